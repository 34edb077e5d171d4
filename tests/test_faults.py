"""Faults and hostile files (issue 16): each expected failure is one `error:` line, a non-zero
exit code and no traceback, and nothing is lost. Every file here is made by the test."""

import errno
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minicnn
from minicnn.cli import common as cli_common
from minicnn.cli.run_folder import RunFolder
from minicnn.data import images as images_mod
from minicnn.io import ModelFileError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = ["--classes", "4", "--per-class", "10", "--image-size", "32", "--no-progress"]


def run(args, env=None):
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        env=None if env is None else os.environ | env,
    )


def train(out, *args, patch=""):
    """examples/train_paper.py on a tiny synthetic set; `patch`: Python run first (a fault)."""
    argv = [str(EXAMPLES / "train_paper.py"), *TINY, "--out", str(out), *map(str, args)]
    code = f"""
import runpy, sys
{textwrap.dedent(patch)}
sys.argv = {argv!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""
    return run(["-c", code])


def one_error_line(result, *parts):
    """The run failed with exit code 1 and one `error:` line holding every part."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for part in parts:
        assert part in errors[0], errors[0]
    return errors[0]


def snapshot(folder):
    """{name: bytes} of every file in a folder: what a failed run must leave as it was."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder after one epoch of the paper preset: model.npz, checkpoint.npz, results."""
    out = tmp_path_factory.mktemp("faults") / "run"
    result = train(out, "--epochs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture
def run_folder(trained, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    return out


# ---------------------------------------------------------------- checkpoints and writes


def test_resume_from_a_truncated_checkpoint_is_one_line_and_changes_nothing(run_folder):
    checkpoint = run_folder / "checkpoint.npz"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    before = snapshot(run_folder)
    result = train(run_folder, "--epochs", "2", "--resume")
    one_error_line(result, "checkpoint.npz is not a readable .npz file", "nothing in")
    assert snapshot(run_folder) == before


def test_resume_from_a_checkpoint_of_another_architecture(run_folder):
    before = snapshot(run_folder)
    result = train(run_folder, "--epochs", "2", "--resume", "--preset", "paper13")
    one_error_line(result, "checkpoint.npz was trained with --preset paper, not --preset paper13")
    assert snapshot(run_folder) == before


def test_a_full_disk_while_the_checkpoint_is_written_keeps_the_last_one(run_folder):
    before = (run_folder / "checkpoint.npz").read_bytes()
    disk_full = """
    import errno, numpy as np
    savez = np.savez
    def full(f, **arrays):  # the checkpoint's write fails half-way: no space left
        if "checkpoint" in getattr(f, "name", ""):
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        savez(f, **arrays)
    np.savez = full
    """
    result = train(run_folder, "--epochs", "2", "--resume", patch=disk_full)
    line = one_error_line(result, "cannot write", "checkpoint.npz: No space left on device")
    assert "the previous file is unchanged" in line
    assert "the checkpoint of epoch 1" in line and "is intact" in line
    assert (run_folder / "checkpoint.npz").read_bytes() == before
    names = sorted(p.name for p in run_folder.iterdir())
    assert not [n for n in names if "tmp" in n or n == RunFolder.LOCK], names
    assert minicnn.load(run_folder / "model.npz").metadata["epoch"] in (1, 2)  # still a model


def test_write_errors_name_the_file_and_keep_the_old_one(tmp_path, monkeypatch):
    model = minicnn.models.paper(num_classes=3, image_size=32)
    path = tmp_path / "model.npz"
    minicnn.save(model, path)
    before = path.read_bytes()

    def full(f, **arrays):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError) as err:
        minicnn.save(model, path)
    assert err.value.errno == errno.ENOSPC
    assert str(err.value) == (
        f"cannot write {path}: No space left on device; the previous file is unchanged"
    )
    assert cli_common.describe(err.value) == str(err.value)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


# ---------------------------------------------------------------- hostile model files


def rewrite_record(src, dst, change):
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    record = json.loads(str(arrays["minicnn.json"]))
    change(record)
    arrays["minicnn.json"] = np.array(json.dumps(record))
    np.savez(dst, **arrays)
    return dst


def test_a_record_claiming_a_huge_layer_is_refused_before_any_allocation(tmp_path):
    good = tmp_path / "good.npz"
    minicnn.save(minicnn.models.paper(num_classes=3, image_size=32), good)

    def huge(record):  # Dense(10^7 -> 10^7): 400 TB of float32, arrays of (64, 128)
        record["layers"][17]["config"].update(in_features=10**7, out_features=10**7)

    bad = rewrite_record(good, tmp_path / "huge.npz", huge)
    before = bad.read_bytes()
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as err:
            minicnn.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "huge.npz: layer #17 Dense(in_features=10000000, out_features=10000000" in str(err.value)
    assert "needs 'layers.17.W' of shape (10000000, 10000000), the file holds (64, 128)" in str(
        err.value
    )
    assert peak < 1 << 20  # well under a megabyte: nothing was built
    result = run(["-m", "minicnn", "summary", bad])
    one_error_line(result, "huge.npz: layer #17 Dense(")
    assert bad.read_bytes() == before
    debug = run(["-m", "minicnn", "summary", bad, "--debug"])
    assert (
        debug.returncode == 1 and "Traceback" in debug.stderr and "ModelFileError" in debug.stderr
    )
    env = run(["-m", "minicnn", "summary", bad], env={cli_common.DEBUG_ENV: "1"})
    assert "Traceback" in env.stderr


def test_records_too_deep_too_large_or_of_wrong_types_are_model_file_errors(tmp_path, monkeypatch):
    good = tmp_path / "good.npz"
    minicnn.save(minicnn.models.paper(num_classes=3, image_size=32), good)
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["minicnn.json"] = np.array("[" * 100_000 + "]" * 100_000)
    np.savez(tmp_path / "deep.npz", **arrays)
    with pytest.raises(ModelFileError, match="deep.npz: its record nests deeper than 32 levels"):
        minicnn.load(tmp_path / "deep.npz")
    monkeypatch.setattr(minicnn.saving.archive, "MAX_RECORD_CHARS", 1000)
    with pytest.raises(ModelFileError, match=r"good.npz: its record has [\d,]+ characters"):
        minicnn.load(good)
    monkeypatch.undo()
    cases = {
        "input_shape": ("big", r"'input_shape' should be \[C, H, W\], three ints, is a str"),
        "layers": ({"type": "Dense"}, "'layers' should be a list"),
        "class_names": ([1, 2, 3], "'class_names' should be a list of names, is a list"),
        "mean": ([0.5], "'mean' should be 3 numbers"),
    }
    for key, (value, message) in cases.items():
        bad = rewrite_record(good, tmp_path / f"{key}.npz", lambda r: r.update({key: value}))
        with pytest.raises(ModelFileError, match=message):
            minicnn.load(bad)

    def nested_config(record):
        record["layers"][0]["config"]["kernel_size"] = [3, [3]]

    bad = rewrite_record(good, tmp_path / "config.npz", nested_config)
    with pytest.raises(ModelFileError, match=r"layer #0 Conv2D\(.*'kernel_size' is a list"):
        minicnn.load(bad)


def test_an_array_header_that_promises_more_than_the_file_holds(tmp_path):
    """A .npy header claiming (10^6, 10^6) floats over 16 bytes of data: refused unread."""
    good = tmp_path / "good.npz"
    minicnn.save(minicnn.models.paper(num_classes=3, image_size=32), good)
    bad = tmp_path / "liar.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        liar = io.BytesIO()
        header = {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
        np.lib.format.write_array_header_1_0(liar, header)
        dst.writestr("optim.m.0.npy", liar.getvalue() + bytes(16))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"liar.npz: array 'optim.m.0' declares \(1000000"):
            minicnn.load(bad)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- hostile images


def png_declaring(width, height):
    """A valid-looking PNG of a few bytes whose header declares width x height pixels."""

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = minicnn.models.paper(num_classes=3, image_size=32)
    model.class_names = ["a", "b", "c"]
    minicnn.save(model, folder / "model.npz")
    return folder / "model.npz"


def test_a_decompression_bomb_is_skipped_and_the_good_images_predicted(cli_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 40), (200, 10, 10)).save(photos / "good.png")
    (photos / "bomb.png").write_bytes(png_declaring(20_000, 20_000))  # 400 megapixels
    (photos / "warn.png").write_bytes(png_declaring(10_000, 10_000))  # Pillow would only warn
    result = run(["-m", "minicnn", "predict", cli_model, photos, "--top-k", "1"])
    one_error_line(result, "2 of 3 images could not be read (1 done)")
    assert result.stdout.splitlines()[0] == str(photos / "good.png")
    refused = [line for line in result.stderr.splitlines() if "refused" in line]
    assert len(refused) == 2 and all("more than 89,478,485 pixels" in line for line in refused)
    with pytest.raises(images_mod.UnreadableImage, match="bomb.png: refused"):
        minicnn.data.load_image(photos / "bomb.png")


def test_bombs_and_truncated_images_are_skipped_by_the_loader(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "set" / cls).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (12, 10), 40 + 100 * (cls == "b")).save(
                tmp_path / "set" / cls / f"{i}.png"
            )
    (tmp_path / "set" / "a" / "bomb.png").write_bytes(png_declaring(20_000, 20_000))
    full = (tmp_path / "set" / "b" / "0.png").read_bytes()
    (tmp_path / "set" / "b" / "cut.png").write_bytes(full[: len(full) // 2])
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\)"):
        ds = minicnn.data.load(tmp_path / "set", image_size=8, cache=False, workers=1,
                               progress=False, val_fraction=0, test_fraction=0)  # fmt: skip
    assert len(ds.train) == 8 and np.bincount(ds.train.labels).tolist() == [4, 4]
    assert sorted(Path(s).name for s in ds.skipped) == ["bomb.png", "cut.png"]


# ---------------------------------------------------------------- hostile folders


def test_a_link_loop_is_not_followed_and_the_load_goes_on(tmp_path, cli_model):
    root = tmp_path / "set"
    for cls in ("a", "b"):
        (root / cls / "sub").mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), 40 + 100 * (cls == "b")).save(root / cls / "sub" / f"{i}.png")
    try:
        os.symlink("..", root / "a" / "sub" / "up")  # a/sub/up -> a: a loop
        os.symlink(root, root / "b" / "root")  # b/root -> the whole tree: a loop too
    except (OSError, NotImplementedError):
        pytest.skip("no symbolic links here")
    with pytest.warns(UserWarning, match=r"2 path\(s\) left out of .*a link back up the tree"):
        ds = minicnn.data.load(root, image_size=8, cache=False, workers=1, progress=False,
                               val_fraction=0, test_fraction=0)  # fmt: skip
    assert len(ds.train) == 6 and np.bincount(ds.train.labels).tolist() == [3, 3]
    assert sum("not followed" in note for note in ds.notes) == 2
    result = run(["-m", "minicnn", "predict", cli_model, root, "--top-k", "1"])
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 6 * 2 and "Traceback" not in result.stderr
    assert result.stderr.count("a link back up the tree (a loop)") == 2


def test_a_file_name_that_is_not_utf8_is_read(tmp_path, cli_model):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("this file system stores names as Unicode")
    root = tmp_path / "set"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), 40 + 100 * (cls == "b")).save(root / cls / f"{i}.png")
    odd = os.path.join(os.fsencode(root / "a"), b"caf\xe9-\xff.png")  # Latin-1 bytes
    try:
        Image.new("L", (8, 8), 40).save(open(odd, "wb"), format="PNG")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    ds = minicnn.data.load(root, image_size=8, cache=True, cache_dir=tmp_path / "cache",
                           workers=1, progress=False, val_fraction=0, test_fraction=0)  # fmt: skip
    assert len(ds.train) == 7 and ds.skipped == []
    result = run(["-m", "minicnn", "predict", cli_model, root / "a", "--csv", tmp_path / "p.csv"])
    assert result.returncode == 0, result.stderr
    assert str(root / "a" / "caf\\xe9-\\xff.png") in result.stdout.splitlines()
    assert "caf\\xe9-\\xff.png" in (tmp_path / "p.csv").read_text()


# ---------------------------------------------------------------- the --out lock


def test_a_locked_out_folder_refuses_a_second_training_at_once(run_folder):
    before = snapshot(run_folder)
    holder = RunFolder(run_folder)  # this process trains into the folder, say
    try:
        result = train(run_folder, "--epochs", "2", "--resume")
        line = one_error_line(result, f"{run_folder} is in use by another training")
        assert f"pid {os.getpid()}" in line and RunFolder.LOCK in line
        assert "data:" not in result.stdout  # refused before loading or training anything
    finally:
        holder.release()
    assert snapshot(run_folder) == before


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path):
    out = tmp_path / "run"
    code = (
        f"from minicnn.cli.run_folder import RunFolder; RunFolder({str(out)!r}); "
        "print('locked', flush=True); input()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "locked"
    with pytest.raises(cli_common.CommandError, match=f"pid {child.pid}"):
        RunFolder(out)
    child.send_signal(signal.SIGKILL)  # no clean-up: the lock file stays behind
    child.wait()
    assert (out / RunFolder.LOCK).exists()
    folder = RunFolder(out)
    assert f"pid {os.getpid()}" in (out / RunFolder.LOCK).read_text()
    folder.release()
    assert not (out / RunFolder.LOCK).exists()


# ---------------------------------------------------------------- unexpected errors


def test_unexpected_errors_keep_their_traceback():
    def bug(argv):
        raise KeyError("a bug")

    def expected(argv):
        raise ModelFileError("x.npz is broken")

    with pytest.raises(KeyError):
        cli_common.run(bug, [])
    assert cli_common.run(expected, []) == 1
    with pytest.raises(ModelFileError):
        cli_common.run(expected, ["--debug"])
