"""The training command line that examples/train_paper.py and examples/train_xray.py share.

An example keeps what is its own (its synthetic stand-in, its model and loss, what it says
about them); this module holds what they have in common, each piece once:

- `parser`, `parse`: the options. The recipe options (RECIPE: epochs, batch size, optimizer,
  learning rate, weight decay, schedule and warm-up, label smoothing, dropout,
  augmentation) default to None and are filled from the preset's recipe (models.recipe),
  and the settings are printed, so that a preset brings its own recipe;
- `optimizer`, `schedule`, `augmentation`: the recipe's objects;
- `load_data`, `splits`: --data (or --download) with --per-class; the splits a run uses;
- `RunFolder`: the --out folder, locked while a training runs in it, so that a second
  training on the same folder refuses at once (a lock left by a crashed run is no obstacle);
- `fit`: minicnn.fit with the checkpoint and the best model, failures said in one line;
- `write_results`: evaluate the best model and write metrics, history.csv, curves.png,
  confusion.csv / .png and results.json, each through a temporary file; two classes are
  reported at a threshold chosen on validation, with intervals and roc.png (cli_screening).
--init MODEL.npz fine-tunes a trained model instead (cli_transfer).
"""

import argparse
import atexit
import json
import os
import socket
import time

import numpy as np

from . import cli_screening, cli_transfer, io, models, optim, schedules
from .cli_common import CommandError, add_debug_option, describe, errors_as_one_line
from .data import Augment, download, load
from .data.augment import TTA
from .distributed import root_prints_only, world
from .io import ModelFileError, atomic_write, write_confusion_csv, write_history_csv
from .kernels import kernels_compiled
from .metrics import binary_metrics, confusion_matrix
from .plots import plot_confusion, plot_curves
from .train import SaveBest, evaluate
from .train import fit as train_fit

PRESETS = {  # --preset: the network
    "paper": models.paper,
    "paper13": models.paper13,
    "paper_bn": models.paper_bn,
}
RECIPE = (  # options a preset fills
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "dropout",
    "augment",
)
AUGMENT = dict(flip=0.5, rotate=10, shift=0.1, brightness=0.2, contrast=0.2)  # --augment
MAX_CONFUSION_PICTURE = 20  # classes; above, only confusion.csv


# ----------------------------------------------------------------------------- settings


def recipe(preset):
    """The defaults of the RECIPE options for a preset, from models.recipe (its one place).

    augment is True when the preset's recipe augments (the example picks the transforms).
    """
    r = models.recipe(preset)
    r["schedule"] = r["schedule"] or "none"
    return {k: (r[k] is not None) if k == "augment" else r[k] for k in RECIPE}


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def parser(doc, data_help, downloads, out_help, synthetic=None):
    """The shared options; the example adds its own, then calls parse().

    doc: the example's docstring (its first line is the description); synthetic: recipe
    values used instead of the preset's when there is no --data (e.g. {"epochs": 8}).
    """
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.set_defaults(synthetic_recipe=synthetic or {})
    paper = recipe("paper")
    add = p.add_argument
    add("--data", help=data_help)
    add("--download", choices=downloads, help="fetch a data set into data/ first")
    add("--preset", default="paper", choices=list(PRESETS), help="network and recipe (paper)")
    but = "".join(f"; synthetic: {v}" for k, v in (synthetic or {}).items() if k == "epochs")
    add(
        "--epochs",
        type=positive_int,
        help=f"passes over the training set (paper: {paper['epochs']}{but})",
    )
    add("--batch-size", type=positive_int, help=f"mini-batch size (paper: {paper['batch_size']})")
    add("--optimizer", choices=["Adam", "AdamW"], help="Adam, or AdamW (decoupled decay)")
    add("--lr", type=float, help=f"learning rate (paper: {paper['lr']:g})")
    add("--weight-decay", type=float, help="Adam: L2 penalty; AdamW: decoupled (paper: 0)")
    add("--schedule", choices=["none", "cosine"], help="learning rate per batch (paper: none)")
    add("--warmup-epochs", type=float, help="cosine: linear warm-up from 0 (epochs)")
    add("--label-smoothing", type=float, help="softmax target smoothing (paper: 0)")
    add(
        "--dropout", type=float, help=f"fraction dropped before flatten (paper: {paper['dropout']})"
    )
    add("--augment", action=argparse.BooleanOptionalAction, help="random shifts, rotations, ...")
    add("--image-size", type=positive_int, default=64, help="images resized to S x S (64)")
    add(
        "--per-class",
        type=positive_int,
        help="training images kept per class (synthetic: made per class, then split 80/10/10; 400)",
    )
    add("--seed", type=int, default=0, help="seed of weights, shuffling, dropout and splits")
    add("--out", help=out_help)
    add("--resume", action="store_true", help="continue from --out/checkpoint.npz")
    add("--workers", type=positive_int, help="image decoding processes (default: all cores)")
    add("--no-cache", action="store_true", help="do not cache decoded images on disk")
    add("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    add(
        "--threads",
        type=positive_int,
        help="threads (default: all cores); resume with the same count for identical bits",
    )
    add(
        "--sync-batchnorm",
        action="store_true",
        help="under mpiexec: BatchNorm uses the whole global batch's statistics, as 1 process",
    )
    add(
        "--tta",
        choices=TTA,
        help="also give the final figures averaged over each image and its mirror (flip)",
    )
    cli_transfer.add_options(p)  # --init MODEL.npz: fine-tune
    cli_screening.add_options(p)  # two classes: --target-sensitivity, --threshold
    add_debug_option(p)
    return p


def parse(p, argv=None):
    """Parse, fill the recipe options from the preset, print them; --download fetches.

    Returns the namespace, with data_name ("synthetic" or the source's name) added.
    """
    errors_as_one_line(argv)  # from here on an expected error is one line, not a traceback
    root_prints_only()  # under mpiexec: rank 0 alone prints (errors still show on any rank)
    args = p.parse_args(argv)
    cli_screening.check_options(args)
    if args.threads:
        from .fast.threads import set_num_threads

        set_num_threads(args.threads)
    if args.download:
        args.data = download(args.download, "data", size=args.image_size)
    defaults = recipe(args.preset) | (args.synthetic_recipe if args.data is None else {})
    del args.synthetic_recipe
    given = [k for k in RECIPE if getattr(args, k) is not None]
    for k in RECIPE:
        if getattr(args, k) is None:
            setattr(args, k, defaults[k])
    shown = ", ".join(f"{k.replace('_', ' ')} {getattr(args, k)}" for k in RECIPE)
    options = ", ".join("--" + k.replace("_", "-") for k in given)
    print(f"settings: preset {args.preset}: {shown}" + (f" ({options} given)" if given else ""))
    args.data_name = (
        "synthetic"
        if args.data is None
        else os.path.basename(os.path.normpath(str(args.data))).split(".")[0]
    )
    return args


# ----------------------------------------------------------------------------- recipe objects


def optimizer(model, args):
    """Adam or AdamW over the model's parameters, as --optimizer, --lr, --weight-decay say.

    With weight decay, the preset's no_decay rule applies (paper_bn: biases and BatchNorm's
    gamma and beta are not decayed).
    """
    params = model.parameters()
    no_decay = models.recipe(args.preset)["no_decay"]
    skip = optim.biases_and_norms(params) if no_decay == "biases_and_norms" else ()
    kind = optim.AdamW if args.optimizer == "AdamW" else optim.Adam
    return kind(params, lr=args.lr, weight_decay=args.weight_decay, no_decay=skip)


def schedule(opt, args, train_size, model=None):
    """--schedule cosine: Cosine over all the run's batches with --warmup-epochs; or None.

    With --init, the fine-tuning's two stages (cli_transfer.schedule), the cosine over the
    second one.
    """
    per_epoch = -(-train_size // args.batch_size)  # batches per epoch, the last one smaller
    if args.init:
        return cli_transfer.schedule(opt, model, args, per_epoch, cosine)
    return cosine(opt, args, args.epochs * per_epoch, per_epoch)


def cosine(opt, args, steps, per_epoch):
    """Cosine over `steps` batches with --warmup-epochs, as --schedule says; or None.

    A warm-up as long as the run (--epochs 1 with one warm-up epoch) is cut to leave it
    its last step.
    """
    if args.schedule == "none" or steps < 1:
        return None
    return schedules.Cosine(
        opt,
        total_steps=steps,
        warmup_steps=min(round(args.warmup_epochs * per_epoch), steps - 1),
        min_lr=models.recipe(args.preset)["min_lr"],
    )


def augmentation(args, transforms=None):
    """With --augment, Augment(**transforms), or the preset's own, or AUGMENT; else None."""
    if not args.augment:
        return None
    return Augment(**(transforms or models.recipe(args.preset)["augment"] or AUGMENT))


# ----------------------------------------------------------------------------- data


def load_data(args, channels):
    """minicnn.data.load(--data) as the options say; at most --per-class training images
    of each class (a seeded choice)."""
    ds = load(
        args.data,
        image_size=args.image_size,
        channels=channels,
        seed=args.seed,
        cache=not args.no_cache,
        workers=args.workers,
        progress=not args.no_progress,
    )
    if args.per_class:
        rng = np.random.default_rng(args.seed)
        keep = [
            rng.permutation(np.flatnonzero(ds.train.labels == c))[: args.per_class]
            for c in range(ds.num_classes)
        ]
        ds.train = ds.train.subset(np.sort(np.concatenate(keep)))
    return ds


class Splits:
    """What a run uses: train; val (None when empty) picks the best epoch; test is reported
    on (the val split when there is no test split; test_name says which)."""

    def __init__(self, ds, synthetic):
        if synthetic:  # load() prints its own notes as it goes
            for note in ds.notes:
                print("data:", note)
        self.ds, self.train = ds, ds.train
        self.val = ds.val if ds.val is not None and len(ds.val) else None
        has_test = ds.test is not None and len(ds.test)
        self.test, self.test_name = (ds.test, "test") if has_test else (self.val, "val")
        final = (
            f" / {len(self.test)} test" if has_test else " (no test split: final figures on val)"
        )
        print(
            f"data: {len(self.train)} train / {len(self.val) if self.val else 0} val{final} "
            f"images, {ds.num_classes} classes, {ds.image_shape} each"
        )


# ----------------------------------------------------------------------------- the folder


class RunFolder:
    """The --out folder of one training: its file paths, and a lock held while it runs.

    The lock is `train.lock`, held with an OS file lock (flock; msvcrt on Windows), which the
    OS drops when the process ends in any way, kill -9 included: a second training on the
    folder refuses at once, and a crashed one never leaves it locked. The file says who holds it.
    """

    LOCK = "train.lock"

    def __init__(self, path, resume=False):
        self.path = os.fspath(path)
        self.checkpoint = self.file("checkpoint.npz")
        self.model = self.file("model.npz")
        self._fd = None
        if not world().is_root:  # under mpiexec, rank 0 alone makes, locks and fills it
            return
        os.makedirs(self.path, exist_ok=True)
        self._fd = _lock(self.file(self.LOCK), self.path)
        atexit.register(self.release)
        if os.path.exists(self.checkpoint) and not resume:
            print(
                f"note: {self.checkpoint} exists and will be overwritten "
                "(use --resume to continue it)"
            )

    def file(self, name):
        return os.path.join(self.path, name)

    def kept(self):
        """What a failed or interrupted run leaves to resume from, in words."""
        epoch = io.checkpoint_epoch(self.checkpoint)
        if epoch is None:
            return "no checkpoint had been written"
        return f"the checkpoint of epoch {epoch}, {self.checkpoint}, is intact"

    def release(self):
        if self._fd is not None:
            os.remove(self.file(self.LOCK))  # first: a run that opens it later makes a new one
            os.close(self._fd)
            self._fd = None


def _try_lock(fd):
    """Take an exclusive OS lock on the open file, or raise OSError at once."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _lock(path, folder):
    """Hold the lock file `path`; CommandError naming its holder when another process does."""
    for _ in range(10):  # another run may remove the file between our open and our lock
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _try_lock(fd)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise CommandError(
                f"{folder} is in use by another training ({holder}; lock file {path}): "
                "wait until it ends, or train into another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise CommandError(f"could not take the lock {path}")
    left = os.read(fd, 200).decode("utf-8", "replace").strip()
    if left:
        print(f"note: {path} was left by a run that ended without removing it ({left}); taken over")
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {when}\n".encode())
    return fd


# ----------------------------------------------------------------------------- fit


def fit(model, loss_fn, optimizer, data, args, run, settings, augment=None, schedule=None):
    """minicnn.fit over data.train, best epoch on data.val to run.model, checkpoint each epoch.

    Returns (history, seconds). A write error, a checkpoint that cannot be resumed or an
    interruption ends the program with one line that says what is kept.
    """
    print(
        f"\ntraining {cli_transfer.network(vars(args))} ({model.output} head) for {args.epochs} "
        f"epochs, batch {args.batch_size}, {type(optimizer).__name__} lr {args.lr:g}; writing "
        f"to {run.path}"
    )
    if not kernels_compiled():
        print("(first run: Numba is compiling minicnn's kernels, a few seconds, once)")
    t0 = time.perf_counter()
    try:
        history = train_fit(
            model,
            loss_fn,
            optimizer,
            data.train,
            data.val,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            augment=augment,
            checkpoint=run.checkpoint,
            resume=args.resume,
            schedule=schedule,
            sync_batchnorm=args.sync_batchnorm,
            progress=not args.no_progress,
            callbacks=[SaveBest(run.model, metadata=settings)],
        )
    except KeyboardInterrupt:
        raise SystemExit(f"\ninterrupted; continue with --resume ({run.kept()})") from None
    except OSError as e:
        raise CommandError(f"{describe(e)}; {run.kept()}") from e
    except ModelFileError as e:  # --resume from a checkpoint that cannot be used
        raise CommandError(f"{e}; nothing in {run.path} was changed") from e
    if data.val is None and world().is_root:  # no best epoch to pick: keep the last one
        io.save(model, run.model, metadata=settings)
    return history, time.perf_counter() - t0


# ----------------------------------------------------------------------------- results


def write_results(run, history, seconds, loss_fn, data, settings, extra=None):
    """Evaluate the best model (as a user loads it) and write every result file to run.path.

    Two classes: class 1 is the positive one, predicted when P(class 1) >= a threshold
    chosen on the validation split (cli_screening.report: the figures with intervals,
    roc.png, the threshold stored in model.npz, results.json's `screening` section).
    extra: more results.json keys. Under mpiexec, rank 0 alone does this (the others return).
    """
    if not world().is_root:
        return
    best = io.load(run.model)
    test, names, K = data.test, data.ds.class_names, data.ds.num_classes
    result = evaluate(best, test, loss_fn)
    print(
        f"\n{data.test_name} set ({len(test)} images), model of epoch "
        f"{best.metadata.get('epoch', len(history))}:"
    )
    metrics = {"split": data.test_name, "images": len(test), "loss": result["loss"]}
    metrics["accuracy"] = result["accuracy"]
    at_half = "  at threshold 0.5" if K == 2 else ""
    print(f"  accuracy {result['accuracy']:.1%}   (chance {1 / K:.1%}){at_half}")
    if "top5" in result:
        print(f"  top-5 accuracy {result['top5']:.1%}")
        metrics["top5"] = result["top5"]
    if settings.get("tta"):  # the same model shown more views of each test image
        metrics["tta"] = tta_figures(best, test, loss_fn, settings["tta"])
    predicted, extra = result["predictions"], dict(extra or {})
    if K == 2:
        threshold, extra["screening"] = cli_screening.report(best, data, result, settings, run)
        scores = result["probs"][:, 1]  # P(class 1)
        metrics |= binary_metrics(result["labels"], scores, threshold) | {"threshold": threshold}
        predicted = (scores >= threshold).astype(np.int64)

    cm = confusion_matrix(result["labels"], predicted, K)
    title = f"{cli_transfer.network(settings)} on {settings['data_name']}"
    write_history_csv(run.file("history.csv"), history)
    atomic_write(run.file("curves.png"), lambda tmp: plot_curves(history, tmp, title=title))
    write_confusion_csv(run.file("confusion.csv"), cm, names)
    if K <= MAX_CONFUSION_PICTURE:
        atomic_write(run.file("confusion.png"), lambda tmp: plot_confusion(cm, names, tmp))
    results = {
        "metrics": metrics,
        "best_epoch": best.metadata.get("epoch"),
        "epochs_run": len(history),
        "train_seconds": round(seconds, 1),
        "history": history,
        "settings": settings,
        "data": {
            "classes": K,
            "class_names": names,
            "notes": data.ds.notes,
            "train": len(data.train),
            "val": len(data.val) if data.val else 0,
            "test": len(test),
        },
        **extra,
    }
    text = json.dumps(results, indent=2, default=float)
    atomic_write(run.file("results.json"), lambda tmp: _write_text(tmp, text))
    files = sorted(set(os.listdir(run.path)) - {RunFolder.LOCK})
    print(f"\nwrote {', '.join(files)} to {run.path}")
    print(f"predict: python -m minicnn predict {run.model} IMAGE [IMAGE ...]")


def tta_figures(model, split, loss_fn, tta):
    """evaluate(..., tta=tta) printed as one line; its figures as a dict for results.json."""
    result = evaluate(model, split, loss_fn, tta=tta)
    figures = {"views": tta, "loss": result["loss"], "accuracy": result["accuracy"]}
    line = f"  with --tta {tta} (each image and its mirror): accuracy {result['accuracy']:.1%}"
    if "top5" in result:
        figures["top5"] = result["top5"]
        line += f", top-5 {result['top5']:.1%}"
    print(line)
    return figures


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
