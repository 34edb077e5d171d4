"""docs/explain/screening.py, the shortcut check of a screening model: its regions, the share
of a map's mass in each, a whole run on a tiny model and a tiny two-class data set, and the
grid of overlays it draws (minicnn.overlays)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minicnn
from minicnn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential, explain
from minicnn.cli.common import run
from minicnn.overlays import BOX, GAP, LINE, plot_overlay_grid
from minicnn.plots import overlay

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "explain" / "screening.py"
spec = importlib.util.spec_from_file_location("screening", SCRIPT)
screening = importlib.util.module_from_spec(spec)
spec.loader.exec_module(screening)

# On a 100x100 frame every box edge falls between pixel centres: areas are the fractions.
AREAS = {
    "lung, image left": 0.65 * 0.30,
    "lung, image right": 0.65 * 0.30,
    "central column": 0.80 * 0.20,
    "border": 1 - 0.80 * 0.80,
    "other": 0.80 * 0.80 - 2 * 0.65 * 0.30 - 0.80 * 0.20,
    "top corners": 2 * 0.15 * 0.25,
}


def test_region_areas_are_their_fractions_and_five_tile_the_frame():
    masks = screening.region_masks(100, 100)
    assert list(masks) == screening.TILING + ["top corners"]
    for name, area in AREAS.items():
        assert masks[name].mean() == pytest.approx(area), name
    tiles = np.sum([masks[name] for name in screening.TILING], axis=0)
    assert (tiles == 1).all()  # every pixel in exactly one of the five
    corners = masks["top corners"]
    assert not (corners & masks["lung, image left"]).any() and (corners & masks["border"]).any()
    assert masks["border"][5, 50] and not masks["border"][10, 50]  # 10% from the top edge
    assert masks["lung, image left"][50, 20] and masks["lung, image right"][50, 80]


def gaussian(H, W, cy, cx, sigma):
    yy, xx = np.mgrid[0:H, 0:W]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def test_region_shares_of_maps_made_by_hand():
    H = W = 64
    masks = screening.region_masks(H, W)
    names = list(masks)
    stacked = np.stack(list(masks.values()))  # (6, 64, 64)
    maps = np.stack([
        masks["lung, image left"] * 0.7,  # all the mass on the left lung box
        gaussian(H, W, 32, 31.5, 1.5),  # a small blob in the middle: the central column
        gaussian(H, W, 2, 60, 1.0),  # a blob in the top right corner: border and corners
        np.ones((H, W)),  # flat: each region gets its share of the area
        np.zeros((H, W)),  # nothing: no share at all
    ])  # fmt: skip
    shares = explain.region_shares(maps, stacked)  # (5, 6)
    tiling = [names.index(n) for n in screening.TILING]
    assert shares.shape == (5, 6)
    np.testing.assert_allclose(shares[:4, tiling].sum(axis=1), 1, rtol=1e-12)
    assert ((shares[:4] >= 0) & (shares[:4] <= 1)).all()
    expected_left = np.eye(6)[names.index("lung, image left")]
    np.testing.assert_allclose(shares[0], expected_left, atol=1e-12)
    assert shares[1, names.index("central column")] > 0.999
    assert shares[2, names.index("border")] > 0.999 and shares[2, names.index("top corners")] > 0.99
    np.testing.assert_allclose(shares[3], stacked.mean(axis=(1, 2)), rtol=1e-12)
    assert np.isnan(shares[4]).all()
    assert screening.mean_shares(shares[[0, 4]]).tolist() == shares[0].tolist()  # nan left out


def tiny_data(path, n_test=40):
    """A MedMNIST-style .npz: 28x28 gray, normal (0) and pneumonia (1), a bright patch mostly
    on pneumonia."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("val", 6), ("test", n_test)):
        labels = (rng.random(n) < 0.5).astype(np.int64)
        images = rng.integers(0, 120, (n, 28, 28), dtype=np.uint8)
        patch = labels != (np.arange(n) % 4 == 0)  # on most pneumonia images, a few others
        images[patch, 8:20, 6:14] += 120  # so that any threshold gives all four outcomes
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.reshape(n, 1)
    np.savez(path, **arrays)
    return path


def tiny_model(path, data):
    """Conv -> ReLU -> pool (10x10) -> pool -> conv (5x5) -> ReLU -> GAP -> one sigmoid unit,
    20x20 input, with a threshold that splits the test images."""
    rng = np.random.default_rng(1)
    layers = [Conv2D(1, 6, 3, padding="same", rng=rng), ReLU(), MaxPool2D(2),
              MaxPool2D(2), Conv2D(6, 6, 3, padding="same", rng=rng), ReLU(),
              GlobalAvgPool2D(), Dense(6, 1, rng=rng)]  # fmt: skip
    model = Sequential(layers, input_shape=(1, 20, 20), output="sigmoid")
    model.class_names = ["normal", "pneumonia"]
    test = minicnn.data.load(data, image_size=20, channels=1, progress=False).test
    p1 = model.predict_proba(test.images)[:, 1]
    model.threshold = float(np.quantile(p1, 0.4))
    minicnn.save(model, path)
    return minicnn.load(path), test


def test_a_run_counts_the_outcomes_at_the_stored_threshold_and_writes_the_figures(tmp_path, capsys):
    data = tiny_data(tmp_path / "pneumoniamnist.npz")
    model, test = tiny_model(tmp_path / "model.npz", data)
    out, figures = tmp_path / "pictures", tmp_path / "figures.json"
    argv = [str(tmp_path / "model.npz"), "--data", str(data), "--per-case", "3",
            "--out", str(out), "--json", str(figures), "--no-progress"]  # fmt: skip
    assert screening.main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(figures.read_text())

    p1 = model.predict_proba(test.images)[:, 1]
    m = minicnn.metrics.binary_metrics(test.labels, p1, model.threshold)
    counts = {name: result["outcomes"][name]["count"] for name, *_ in screening.OUTCOMES}
    assert counts == {"true positive": m["tp"], "false negative": m["fn"],
                      "false positive": m["fp"], "true negative": m["tn"]}  # fmt: skip
    assert sum(counts.values()) == len(test) == result["images"] == 40
    assert min(counts.values()) > 0  # the threshold gives every outcome, for the checks below
    decided = p1 >= model.threshold
    for name, _, truth, call in screening.OUTCOMES:  # the first 3 of each, in file order
        members = np.flatnonzero((test.labels == truth) & (decided == call))
        assert result["outcomes"][name]["shown"] == members[:3].tolist()
    assert f"test split, 40 images: {m['tp']} true positive, {m['fn']} false negative" in printed
    assert result["threshold"] == model.threshold
    assert result["layer"] == "layer 2 MaxPool2D(2, stride=2), 10x10 map"  # the last map >= 8x8

    masks = screening.region_masks(20, 20)
    for name, mask in masks.items():
        assert result["regions"][name]["area"] == pytest.approx(mask.mean())
    assert None not in result["all"].values()
    for figures_of in [o["shares"] for o in result["outcomes"].values()] + [result["all"]]:
        shares = [figures_of[name] for name in screening.TILING]
        if None not in shares:  # None: every map of the outcome was zero
            assert all(0 <= s <= 1 for s in shares) and sum(shares) == pytest.approx(1)
    assert "| region | area | TP (" in printed and "| border | 36% |" in printed
    for picture in ("screening-gradcam.png", "screening-mean-maps.png"):
        assert (out / picture).stat().st_size > 1000


def test_a_model_of_other_than_two_classes_is_one_error_line(tmp_path, capsys):
    model = Sequential([Conv2D(1, 2, 3), ReLU(), GlobalAvgPool2D(), Dense(2, 3)],
                       input_shape=(1, 8, 8))  # fmt: skip
    minicnn.save(model, tmp_path / "three.npz")
    argv = [str(tmp_path / "three.npz"), "--data", str(tmp_path / "none.npz")]
    assert run(screening.main, argv) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'three.npz'} has 3 classes: the shortcut check is for two-class "
        "screening models\n"
    )


def test_overlay_grid_places_cells_boxes_and_an_empty_row(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 8, 8), dtype=np.uint8)
    heat = rng.random((8, 8))
    rows = [[(image, heat, "a"), (image, heat, "b\nc")], []]
    path = plot_overlay_grid(rows, tmp_path / "grid.png", boxes=[(0.25, 0.75, 0.25, 0.75)], cell=32)
    picture = np.asarray(Image.open(path).convert("RGB"))
    cell = np.asarray(overlay(image, heat, 0.4, 4))  # (32, 32, 3): no title, no labels:
    x0, y0, step = 10, 10, 32 + GAP  # the first cell at (10, 10), the next GAP further on
    inside = np.ones((32, 32), bool)
    inside[8:24, 8:24] = False
    inside[9:23, 9:23] = True  # all but the box's outline
    for x in (x0, x0 + step):
        np.testing.assert_array_equal(picture[y0 : y0 + 32, x : x + 32][inside], cell[inside])
        assert (picture[y0 + 8 : y0 + 24, x + 8] == BOX).all()  # the box's left side
    below = y0 + 32 + 2 * LINE + 6 + GAP  # the second row starts under the first's captions
    assert picture.shape[0] == below + 32 + 2 * LINE + 6 + GAP  # every row as tall
    assert (picture[below : below + 32, x0 : x0 + 2 * step] > 200).all(axis=-1).mean() > 0.9
    with pytest.raises(ValueError, match="every row is empty"):
        plot_overlay_grid([[], []], tmp_path / "none.png")
