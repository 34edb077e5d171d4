"""minicnn train: train a CNN (the paper's, or a two-class screening one) and write its results.

    minicnn train                                        # the paper's CNN, synthetic stand-in
    minicnn train --data path/to/tiny-imagenet-200.zip   # the paper's data
    minicnn train --download tiny-imagenet               # fetch it into data/, then train
    minicnn train --data my_classes/ --init MODEL.npz    # new classes: fine-tune a trained model
    minicnn train --resume                               # continue an interrupted run
    minicnn train --screening                            # two classes: synthetic stand-in
    minicnn train --screening --download pneumoniamnist  # chest X-ray screening
    minicnn train --screening --data path/to/chest_xray  # train|val|test/NORMAL|PNEUMONIA

--data is a folder of class folders (optionally under train/, val/, test/), a .zip of one, or
a MedMNIST .npz. Without --data, a built-in synthetic stand-in (coloured shapes, --classes of
them; a few minutes on two cores) shows that the code learns and says nothing about real data.

--preset picks the network and its recipe: paper and paper13, the paper's Adam 1e-4, batch
32, 20 epochs, dropout 0.2; paper_bn, AdamW 2e-3 with weight decay 0.05, a cosine schedule
with one warm-up epoch, label smoothing 0.1, augmentation, batch 128, 30 epochs; paper_res
(residual blocks), SGD 0.1 with Nesterov's momentum 0.9 and weight decay 5e-4, a linear
schedule to 0 after one warm-up epoch, and paper_bn's smoothing, augmentation, batch and
epochs. Options given override the recipe; the `settings:` line printed first says which
values were given.

--screening trains as examples/train_xray.py does: grayscale in, one sigmoid unit out
(P(class 1) = sigmoid(logit)), binary cross-entropy whose positive term is weighted by
n_negative / n_positive of the training split (--balance pos_weight; sampling: each epoch's
images drawn so that both classes are equally likely, with the raw loss; none: the raw loss
over the split as it is), gentler augmentation and no flips. Class 1, the second class in
sorted order (PNEUMONIA), is the positive one. The decision threshold is chosen on the
validation split (the highest whose sensitivity there is at least --target-sensitivity;
--threshold fixes it) and stored in model.npz; the test split is reported at it, each
figure with a 95% bootstrap interval, and roc.png is drawn. Without --data: a grayscale
two-class synthetic set, imbalanced 3:1, 8 epochs. Without --screening, a two-class data set
is reported the same way.

--out (default runs/<preset>-<data set>; --screening: runs/xray-<data set>) receives
model.npz (the best epoch by validation accuracy), checkpoint.npz (the last epoch, or the
step a signal stopped the run at, for --resume), history.csv, curves.png, confusion.csv,
confusion.png (up to 20 classes) and results.json. The folder is locked while a training
runs in it. --init MODEL.npz fine-tunes a trained model: its layers under a new head, the
head alone for --head-epochs, then every layer. Under mpiexec -n N the batches are shared
by N processes (data-parallel).

SIGTERM (Slurm at a time limit, Kubernetes, systemd) or Ctrl-C stops the run after the step
in progress: the checkpoint of that step is written, one line says how to continue (the same
command with --resume), and the exit code is 143 (SIGTERM) or 130 (SIGINT); Ctrl-C twice
stops at once. --resume continues at that step and ends with the same weights as a run never
stopped. It refuses a --out without checkpoint.npz, and settings that make another run
(--preset, --image-size, --classes, --batch-size, --seed, --optimizer, --schedule, ...);
other settings that differ from the checkpoint's (--epochs extends the run, --lr, ...) are
named, with the value used.
"""

import os
import shlex
import sys
import time

import numpy as np

from .. import kernels_compiled
from ..data import channel_stats
from ..distributed import DistributedError, world
from ..io import ModelFileError, save
from ..losses import BinaryCrossEntropy, SoftmaxCrossEntropy
from ..train import SaveBest
from ..train import fit as train_fit
from ..training.preemption import TrainingInterrupted
from . import options, run_data, transfer
from .common import CommandError, add_command, describe, errors_as_one_line, positive_int
from .results import write_results
from .run_folder import RunFolder, check_resume

CLASSES = 20  # classes of the synthetic stand-in (--classes)
SCREENING_STAND_IN = {"epochs": 8}  # the two-class stand-in learns in fewer than the paper's 20
# no flips for X-rays (the heart is on the left), and gentler changes than for photos
SCREENING_AUGMENT = dict(rotate=5, shift=0.05, brightness=0.1, contrast=0.1)
DATA_HELP = "folder, .zip or MedMNIST .npz (default: the synthetic stand-in)"
DOWNLOADS = ["tiny-imagenet", "pneumoniamnist"]


# ----------------------------------------------------------------------------- the options


def add_commands(commands):
    """Register `train` on the subparsers of `minicnn`."""
    p = add_command(commands, "train", __doc__, help="train a CNN and write its results")
    out_help = "output folder (default runs/<preset>-<data set>; --screening: runs/xray-<data set>)"
    epochs_note = f"; --screening without --data: {SCREENING_STAND_IN['epochs']}"
    p.add_argument(
        "--screening",
        action="store_true",
        help="two classes: gray in, one sigmoid unit, --balance, threshold chosen on validation",
    )
    options.add_options(p, DATA_HELP, DOWNLOADS, out_help, epochs_note)
    add_mode_options(p, paper=True, screening=True)
    p.set_defaults(run=run)


def add_mode_options(p, paper, screening):
    """--classes and --output (paper), --balance (screening); None: the mode's default."""
    if paper:
        p.add_argument(
            "--classes",
            type=positive_int,
            help=f"classes of the synthetic stand-in ({CLASSES}; --screening: 2)",
        )
        p.add_argument(
            "--output",
            choices=["softmax", "sigmoid"],
            help="the head: softmax, or sigmoid (one unit for two classes) (softmax)",
        )
    if screening:
        p.add_argument(
            "--balance",
            choices=["pos_weight", "sampling", "none"],
            help="--screening: the class imbalance: weighed in the loss (pos_weight), evened "
            "out by drawing each epoch's images class-balanced, with replacement (sampling), "
            "or left as it is (none) (pos_weight)",
        )


def parser(doc, screening):
    """The parser of examples/train_paper.py (screening False) or examples/train_xray.py
    (True): minicnn train's options, with the mode fixed instead of --screening."""
    if screening:
        p = options.parser(
            doc,
            data_help="chest X-ray folder / .zip, or a PneumoniaMNIST .npz (default: synthetic)",
            downloads=["pneumoniamnist"],
            out_help="output folder (default runs/xray-<data set>)",
            epochs_note=f"; synthetic: {SCREENING_STAND_IN['epochs']}",
        )
    else:
        p = options.parser(
            doc, DATA_HELP, DOWNLOADS, "output folder (default runs/<preset>-<data set>)"
        )
    add_mode_options(p, paper=not screening, screening=screening)
    p.set_defaults(screening=screening)
    return p


def parse(p, argv=None):
    """For a script: expected errors as one line from here on; p's arguments, settled."""
    errors_as_one_line(argv)  # from here on an expected error is one line, not a traceback
    return settle(p.parse_args(argv))


def settle(args):
    """Check the mode's options, fill the mode's defaults, then options.prepare: the recipe
    filled from the preset and printed. Returns args."""
    if args.screening:
        if getattr(args, "output", None) == "softmax":
            raise CommandError("--screening trains one sigmoid unit: not --output softmax")
        if getattr(args, "classes", None) is not None:
            raise CommandError("--classes is for the synthetic stand-in; --screening's has 2")
        if args.download not in (None, "pneumoniamnist"):
            raise CommandError(
                f"--screening needs two classes; --download {args.download} has more"
            )
        args.output, args.balance = "sigmoid", args.balance or "pos_weight"
    else:
        if getattr(args, "balance", None) is not None:
            raise CommandError("--balance is for --screening (two classes, one sigmoid unit)")
        args.output, args.classes = args.output or "softmax", args.classes or CLASSES
    options.prepare(args, SCREENING_STAND_IN if args.screening else None)
    if args.resume:  # before any work: a checkpoint to resume, and with which settings
        try:  # rank 0 reads it; under MPI the others learn whether it failed
            world().on_root(lambda: check_resume(out_folder(args), vars(args)))
        except DistributedError:  # rank 0 said why
            raise SystemExit(1) from None
    return args


def out_folder(args):
    """--out, or runs/<preset>-<data set> (--screening: runs/xray-<data set>)."""
    kind = "xray" if args.screening else args.preset
    return args.out or f"runs/{kind}-{args.data_name}"


# ----------------------------------------------------------------------------- data, model, loss


def dataset(args, channels):
    """--data loaded (--screening: it must have two classes), or the mode's synthetic stand-in."""
    if args.data is None:
        stand_in = run_data.screening_stand_in if args.screening else run_data.stand_in
        return stand_in(args, channels)
    ds = run_data.load_data(args, channels)
    return run_data.two_classes(ds, args) if args.screening else ds


def new_model(args, ds, init):
    """The network to train, with the data's class names and normalisation (saved with it).

    With --init: the trained model's layers under a fresh head for ds's classes, and its
    own normalisation. Otherwise the preset's network (models.paper, paper13, paper_bn),
    normalised with the training split's per-channel mean and std.
    """
    if init:
        return init.model(ds, output=args.output, seed=args.seed)
    build = options.PRESETS[args.preset]
    model = build(num_classes=ds.num_classes, in_channels=ds.image_shape[0], output=args.output,
                  image_size=args.image_size, dropout=args.dropout, seed=args.seed)  # fmt: skip
    model.class_names = ds.class_names
    model.mean, model.std = channel_stats(ds.train)  # per channel, train split
    return model


def loss(args):
    """Softmax cross-entropy (with --label-smoothing), or binary cross-entropy on the logit."""
    if args.output == "sigmoid":
        return BinaryCrossEntropy()  # takes the logits, as SoftmaxCrossEntropy does
    return SoftmaxCrossEntropy(label_smoothing=args.label_smoothing)


def screening_loss(args, ds):
    """Binary cross-entropy, its positive term weighted by n_negative / n_positive (--balance
    pos_weight) so that both classes weigh the same in total, or not (sampling: the batches
    are balanced instead; none).

    Returns (loss_fn, pos_weight, imbalance): imbalance is results.json's section.
    """
    counts = np.bincount(ds.train.labels, minlength=2)  # negatives, positives
    neg, pos = ds.class_names
    if args.balance == "pos_weight":
        pos_weight = float(counts[0] / max(counts[1], 1))  # n_negative / n_positive
        how = (
            f"positive term of the loss weighted by n_{neg} / n_{pos} = "
            f"{counts[0]} / {counts[1]} = {pos_weight:.3f}"
        )
    elif args.balance == "sampling":
        pos_weight = None
        how = (
            f"each epoch draws {len(ds.train)} training images with replacement, {neg} and "
            f"{pos} equally likely (of {counts[0]} / {counts[1]}); raw binary cross-entropy"
        )
    else:
        pos_weight, how = None, "not handled (--balance none): raw binary cross-entropy"
    print(f"class imbalance: {how}")
    if args.label_smoothing:
        print("note: label smoothing is for softmax heads; this one sigmoid unit trains without")
    imbalance = {"train_counts": counts.tolist(), "handling": how}
    return BinaryCrossEntropy(pos_weight=pos_weight), pos_weight, imbalance


# ----------------------------------------------------------------------------- fit


def fit(model, loss_fn, optimizer, data, args, run, settings, augment=None, schedule=None):
    """minicnn.fit over data.train, best epoch on data.val to run.model, checkpoint each epoch.

    Returns (history, seconds). A write error, a checkpoint that cannot be resumed or an
    interruption ends the program with one line that says what is kept. SIGTERM or SIGINT
    (Ctrl-C) stops the run after the step in progress, with its checkpoint, one line saying
    how to continue, and exit code 128 + the signal's number (143, 130).
    """
    print(
        f"\ntraining {transfer.network(vars(args))} ({model.output} head) for {args.epochs} "
        f"epochs, batch {args.batch_size}, {type(optimizer).__name__} lr {args.lr:g}; writing "
        f"to {run.path}"
    )
    if not kernels_compiled():
        print("(first run: Numba is compiling minicnn's kernels, a few seconds, once)")
    t0 = time.perf_counter()
    model.metadata = settings  # kept in the checkpoint too, for --resume to compare
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
            balance=getattr(args, "balance", None) == "sampling",
            checkpoint=run.checkpoint,
            resume=args.resume,
            schedule=schedule,
            sync_batchnorm=args.sync_batchnorm,
            progress=not args.no_progress,
            callbacks=[SaveBest(run.model, metadata=settings)],
        )
    except TrainingInterrupted as e:
        print(f"\n{e.signal_name}: stopped after step {e.step} of epoch {e.epoch}; checkpoint "
              f"{e.checkpoint}; continue with: {resume_command()}", flush=True)  # fmt: skip
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:  # before the first step, or Ctrl-C twice
        raise SystemExit(f"\ninterrupted; continue with --resume ({run.kept()})") from None
    except OSError as e:
        raise CommandError(f"{describe(e)}; {run.kept()}") from e
    except ModelFileError as e:  # --resume from a checkpoint that cannot be used
        raise CommandError(f"{e}; nothing in {run.path} was changed") from e
    if data.val is None and world().is_root:  # no best epoch to pick: keep the last one
        save(model, run.model, metadata=settings)
    return history, time.perf_counter() - t0


def resume_command(argv=None):
    """The command line that continues this run: the one given, with --resume."""
    argv = list(sys.argv if argv is None else argv)
    program, options = argv[0], argv[1:]
    if os.path.basename(program) == "__main__.py":  # python -m minicnn
        words = ["python", "-m", "minicnn"]
    elif program.endswith(".py"):  # an example script
        words = ["python", program]
    else:  # the installed command
        words = [os.path.basename(program)]
    if world().size > 1:
        words = ["mpiexec", "-n", str(world().size), *words]
    return shlex.join(words + options + ([] if "--resume" in options else ["--resume"]))


# ----------------------------------------------------------------------------- the command


def run(args):
    """minicnn train: what examples/train_paper.py does, or with --screening train_xray.py."""
    del args.run, args.command  # the rest of args is the run's settings
    settle(args)  # the preset fills what the command line leaves out; printed
    folder = RunFolder(out_folder(args), args.resume)  # locked while the run lasts
    init = transfer.Init(args, channels=1 if args.screening else 3)  # --init: its channels

    ds = dataset(args, init.channels)
    data = run_data.Splits(ds, synthetic=args.data is None)  # train, val, test

    model = new_model(args, ds, init)
    settings, extra = vars(args), None  # settings: kept in model.npz and results.json
    if args.screening:
        loss_fn, pos_weight, imbalance = screening_loss(args, ds)
        settings, extra = settings | {"pos_weight": pos_weight}, {"imbalance": imbalance}
    else:
        model.summary()
        loss_fn = loss(args)
    optimizer = options.optimizer(model, args)  # Adam or AdamW, as the preset says
    schedule = options.schedule(optimizer, args, len(data.train), model)  # None, Cosine, 2 stages
    augment = options.augmentation(args, SCREENING_AUGMENT if args.screening else None)

    history, seconds = fit(model, loss_fn, optimizer, data, args, folder, settings, augment,
                           schedule)  # fmt: skip
    write_results(folder, history, seconds, loss_fn, data, settings, extra)
    return 0
