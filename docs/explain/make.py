"""Draw the README's "Explain a prediction" pictures from the shipped models.

python docs/explain/make.py --xray path/to/pneumoniamnist.npz --tiny path/to/tiny-imagenet-200.zip

PneumoniaMNIST: the first true positive, false positive and true negative of the official test
split (in file order, not picked by eye), Grad-CAM at the last 8x8 map (layer 10; the default
layer, after the fifth pool, is 2x2), plus the mean image and mean map per predicted class,
how much of the map lies near the image's edges, and how little occlusion moves the
probability. Tiny ImageNet: the first-layer filters of the best shipped model, how far they
moved from their initial values, and Grad-CAM (its default layer, 8x8) on the first three
validation images and on the first three it classifies right.
Writes the PNGs next to this file and prints the figures the README quotes.
"""

import argparse
import os

import numpy as np

import minicnn
from minicnn import explain
from minicnn.plots import plot_explanation, plot_filters

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "..", "examples", "models")
XRAY_LAYER = 10  # ReLU after the fourth convolution: the last map at 8x8
EDGE = 6  # pixels from each edge of the 64x64 input that count as "the border"
TINY_FIRST = 3  # the first validation images, right or wrong, then as many it gets right


def top(model, p, k=3):
    return [(model.class_names[c], p[c]) for c in np.argsort(-p, kind="stable")[:k]]


def caption(model, p):
    c = int(p.argmax())
    return f"{model.class_names[c].split(',')[0][:24]}  {p[c]:.1%}"


def xray(path):
    model = minicnn.load(os.path.join(MODELS, "paper-pneumoniamnist.npz"))
    C, S, _ = model.input_shape
    test = minicnn.data.load(path, image_size=S, channels=C, progress=False).test
    x, y = test.images, test.labels
    probs = model.predict_proba(x)
    pred = probs.argmax(1)
    cams = explain.grad_cam(model, x, layer=XRAY_LAYER)  # (624, 64, 64), predicted class
    cases = {"true positive": (y == 1) & (pred == 1), "false positive": (y == 0) & (pred == 1)}
    cases["true negative"] = (y == 0) & (pred == 0)
    for name, mask in cases.items():
        i = int(np.flatnonzero(mask)[0])
        title = f"Grad-CAM, layer {XRAY_LAYER}: test image {i}, truly {model.class_names[y[i]]}"
        out = os.path.join(HERE, f"xray-{name.replace(' ', '-')}.png")
        plot_explanation(x[i], cams[i], out, caption(model, probs[i]), top(model, probs[i]), title)
        print(f"{name}: test image {i} -> {out}")
    border = np.ones((S, S), bool)
    border[EDGE:-EDGE, EDGE:-EDGE] = False
    share = explain.region_shares(cams, border[None])[:, 0]  # nan for a map zero everywhere
    print(f"border ({EDGE} px) is {border.mean():.0%} of the image")
    for c, name in enumerate(model.class_names):
        mask = pred == c
        mean_image = np.rint(x[mask].mean(0)).astype(np.uint8)
        mean_map = cams[mask].mean(0)
        title = f"mean of the {mask.sum()} test images predicted {name}"
        out = os.path.join(HERE, f"xray-mean-{name}.png")
        plot_explanation(mean_image, mean_map / mean_map.max(), out, f"mean Grad-CAM: {name}",
                         (), title)  # fmt: skip
        print(f"predicted {name}: {mask.sum()} images, {np.nanmean(share[mask]):.0%} of the map's "
              f"mass on the border -> {out}")  # fmt: skip
    drops = explain.occlusion(model, x[:40]).max(axis=(1, 2))  # 8x8 patches, every 4 pixels
    sure = (probs[:40].max(1) > 0.99).sum()
    print(f"occlusion, first 40 test images ({sure} predicted above 0.99): largest drop "
          f"median {np.median(drops):.3f}, max {drops.max():.3f}")  # fmt: skip
    default = explain.grad_cam(model, x[:1])
    print(f"default layer: the map is {explain.feature_maps(model, x[:1], 15).shape[2:]} "
          f"before resizing; {(default > 0).mean():.0%} of image 0 above zero")  # fmt: skip


def tiny(path):
    model = minicnn.load(os.path.join(MODELS, "paper13-aug-tiny-imagenet.npz"))
    out = os.path.join(HERE, "tiny-filters.png")
    w = explain.filters(model, 0)
    plot_filters(w, out, f"paper13 + augmentation, layer 0: {len(w)} filters 3x3 (RGB)", cell=36)
    print(f"filters -> {out}")
    seed = model.metadata["seed"]  # the run's seed: the same draw gives its initial weights
    start = minicnn.models.paper13(num_classes=200, seed=seed)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, minicnn.Conv2D):
            w, w0 = layer.W.data.ravel(), start[i].W.data.ravel()
            r = np.corrcoef(w, w0)[0, 1]
            moved = np.linalg.norm(w - w0) / np.linalg.norm(w0)
            print(f"layer {i} against its initial weights (seed {seed}): correlation {r:.2f}, "
                  f"moved {moved:.0%}")  # fmt: skip
    C, S, _ = model.input_shape
    val = minicnn.data.load(path, image_size=S, channels=C, cache=False, progress=False).val
    right = np.flatnonzero(model.predict(val.images[:200]) == val.labels[:200])
    picks = list(range(TINY_FIRST)) + [int(i) for i in right if i >= TINY_FIRST][:TINY_FIRST]
    x, y = val.images[picks], val.labels[picks]
    probs = model.predict_proba(x)
    cams = explain.grad_cam(model, x)
    for k, i in enumerate(picks):
        truth = model.class_names[y[k]].split(",")[0]
        out = os.path.join(HERE, f"tiny-gradcam-{i}.png")
        title = f"Grad-CAM: validation image {i}, truly {truth}"
        plot_explanation(x[k], cams[k], out, caption(model, probs[k]), top(model, probs[k]), title)
        hit = "right" if probs[k].argmax() == y[k] else "wrong"
        print(f"val {i}: {truth}; predicted {caption(model, probs[k])} ({hit}) -> {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xray", metavar="NPZ", help="pneumoniamnist.npz (MedMNIST, 28x28)")
    parser.add_argument("--tiny", metavar="ZIP", help="tiny-imagenet-200.zip")
    args = parser.parse_args()
    if args.xray:
        xray(args.xray)
    if args.tiny:
        tiny(args.tiny)
