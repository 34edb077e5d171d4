"""The options of a training run and the recipe they make: shared by minicnn train and the examples.

A preset is a network and its recipe (models.recipe): the recipe options (RECIPE: epochs,
batch size, optimizer, learning rate, weight decay, schedule and warm-up, label smoothing,
dropout, augmentation) default to None and are filled from the preset's recipe when not
given, then printed in one `settings:` line, so that a preset brings its own recipe and the
log says which values were given.

- `add_options`, `parser`, `prepare`: the options, and the recipe ones filled; prepare also
  checks, before any data is read, that the preset's network takes --image-size and that
  --group-by is a usable rule, and sets --split-seed to --seed when not given;
- `optimizer`, `schedule`, `augmentation`: the recipe's objects.
"""

import argparse
import os

from .. import models, optim, schedules
from ..data import Augment, DataError, download
from ..data.augment import TTA
from ..data.groups import group_rule
from ..distributed import root_prints_only
from ..layers import ShapeError
from . import screening, transfer
from .common import CommandError, Parser, add_debug_option, positive_float, positive_int

PRESETS = {  # --preset: the network
    "paper": models.paper,
    "paper13": models.paper13,
    "paper_bn": models.paper_bn,
    "paper_res": models.paper_res,
}
RECIPE = (  # options a preset fills
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "dropout",
    "augment",
)
SGD_ONLY = ("momentum", "nesterov")  # shown in the settings line with SGD only
AUGMENT = dict(flip=0.5, rotate=10, shift=0.1, brightness=0.2, contrast=0.2)  # --augment


# ----------------------------------------------------------------------------- the options


def recipe(preset):
    """The defaults of the RECIPE options for a preset, from models.recipe (its one place).

    augment is True when the preset's recipe augments (the run picks the transforms).
    """
    r = models.recipe(preset)
    r["schedule"] = r["schedule"] or "none"
    return {k: (r[k] is not None) if k == "augment" else r[k] for k in RECIPE}


def add_options(p, data_help, downloads, out_help, epochs_note=""):
    """Add the options every training run takes to the parser p.

    epochs_note: said after the paper's epochs in --epochs' help (e.g. "; synthetic: 8").
    """
    paper = recipe("paper")
    add = p.add_argument
    add("--data", help=data_help)
    add("--download", choices=downloads, help="fetch a data set into data/ first")
    add("--preset", default="paper", choices=list(PRESETS), help="network and recipe (paper)")
    add(
        "--epochs",
        type=positive_int,
        help=f"passes over the training set (paper: {paper['epochs']}{epochs_note})",
    )
    add("--batch-size", type=positive_int, help=f"mini-batch size (paper: {paper['batch_size']})")
    add(
        "--optimizer",
        choices=["Adam", "AdamW", "SGD"],
        help="Adam, AdamW (decoupled decay) or SGD (momentum; paper_res)",
    )
    add("--lr", type=positive_float, help=f"learning rate (paper: {paper['lr']:g})")
    add("--momentum", type=float, help="SGD's momentum (paper_res: 0.9)")
    add(
        "--nesterov",
        action=argparse.BooleanOptionalAction,
        help="SGD: Nesterov's momentum (paper_res: on)",
    )
    add(
        "--weight-decay",
        type=float,
        help="Adam, SGD: L2 penalty; AdamW: decoupled (paper: 0)",
    )
    add(
        "--schedule",
        choices=["none", "cosine", "linear"],
        help="learning rate per batch: cosine or linear to the end (paper: none)",
    )
    add("--warmup-epochs", type=float, help="cosine, linear: linear warm-up from 0 (epochs)")
    add("--label-smoothing", type=float, help="softmax target smoothing (paper: 0)")
    add(
        "--dropout", type=float, help=f"fraction dropped before flatten (paper: {paper['dropout']})"
    )
    add("--augment", action=argparse.BooleanOptionalAction, help="random shifts, rotations, ...")
    add(
        "--augment-scale",
        type=float,
        metavar="S",
        help="with augmentation: also a random zoom by a factor in [1-S, 1+S], 0 <= S < 1 "
        "(e.g. 0.1; default: none)",
    )
    add("--image-size", type=positive_int, default=64, help="images resized to S x S (64)")
    add(
        "--per-class",
        type=positive_int,
        help="training images kept per class (synthetic: made per class, then split 80/10/10; 400)",
    )
    add(
        "--seed",
        type=int,
        default=0,
        help="seed of weights, shuffling, dropout, augmentation and (without --split-seed) "
        "carved splits (0)",
    )
    add(
        "--split-seed",
        type=int,
        metavar="N",
        help="seed of nothing but the val and test splits carved from --data (default: --seed); "
        "give the members of an ensemble the same one, so that no member trains on another's "
        "validation patients",
    )
    add(
        "--group-by",
        default="auto",
        metavar="RULE",
        help="splits carved from train keep a group's images (a patient's) on one side: auto "
        "(patients in chest X-ray file names, e.g. person1_virus_6.jpeg -> person1), a "
        "regular expression with one group (...) searched in each file's path, or none "
        "(image by image) (auto)",
    )
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
    transfer.add_options(p)  # --init MODEL.npz: fine-tune
    screening.add_options(p)  # two classes: --target-sensitivity, --threshold, --bootstrap


def parser(doc, data_help, downloads, out_help, epochs_note=""):
    """A script's parser: the shared options and --debug (doc's first line: the description)."""
    p = Parser(description=doc.split("\n")[0])
    add_options(p, data_help, downloads, out_help, epochs_note)
    add_debug_option(p)
    return p


def prepare(args, synthetic=None):
    """Check the options, fill the recipe ones from the preset, print them; --download fetches.

    synthetic: recipe values used instead of the preset's when there is no --data. Returns
    args, with data_name ("synthetic" or the data set's name) added.
    """
    root_prints_only()  # under mpiexec: rank 0 alone prints (errors still show on any rank)
    screening.check_options(args)
    check_group_by(args.group_by)
    scale = getattr(args, "augment_scale", None)
    if scale is not None and not 0 <= scale < 1:
        raise CommandError(f"--augment-scale must be in [0, 1), got {scale}")
    if not getattr(args, "init", None):  # --init: the trained model's own network
        check_image_size(args.preset, args.image_size)
    if args.threads:
        from ..fast.threads import set_num_threads

        set_num_threads(args.threads)
    if args.download:
        args.data = download(args.download, "data", size=args.image_size)
    defaults = recipe(args.preset) | ((synthetic or {}) if args.data is None else {})
    given = [k for k in RECIPE if getattr(args, k) is not None]
    for k in RECIPE:
        if getattr(args, k) is None:
            setattr(args, k, defaults[k])
    shown = ", ".join(
        f"{k.replace('_', ' ')} {getattr(args, k)}"
        for k in RECIPE
        if args.optimizer == "SGD" or k not in SGD_ONLY
    )
    if getattr(args, "split_seed", None) is None:  # the carve follows --seed, as it always did
        args.split_seed = args.seed
    elif args.split_seed != args.seed:
        shown += f", seed {args.seed}, split seed {args.split_seed}"
    options = ", ".join("--" + k.replace("_", "-") for k in given)
    print(f"settings: preset {args.preset}: {shown}" + (f" ({options} given)" if given else ""))
    if scale and not args.augment:
        raise CommandError(
            f"--augment-scale adds a zoom to the augmentation, and this run does not augment "
            f"(preset {args.preset}): give --augment too"
        )
    args.data_name = (
        "synthetic"
        if args.data is None
        else os.path.basename(os.path.normpath(str(args.data))).split(".")[0]
    )
    return args


def check_image_size(preset, image_size):
    """Build the preset's network for image_size x image_size before any data is read: a
    size its pooling cannot take is a CommandError naming the layer and the smallest size."""
    try:
        PRESETS[preset](num_classes=2, image_size=image_size)
    except ShapeError as e:
        detail = getattr(e, "detail", str(e))
        raise CommandError(
            f"--image-size {image_size} is too small for {preset}: {detail}"
        ) from None


def check_group_by(group_by):
    """--group-by: auto, none or a regular expression with one group; a CommandError if not."""
    try:
        group_rule(group_by)
    except DataError as e:
        raise CommandError(f"--group-by: {e}") from None


# ----------------------------------------------------------------------------- recipe objects


def optimizer(model, args):
    """Adam, AdamW or SGD over the model's parameters, as --optimizer, --lr, --weight-decay
    (and for SGD --momentum, --nesterov) say.

    With weight decay, the preset's no_decay rule applies (paper_bn, paper_res: biases and
    BatchNorm's gamma and beta are not decayed).
    """
    params = model.parameters()
    no_decay = models.recipe(args.preset)["no_decay"]
    skip = optim.biases_and_norms(params) if no_decay == "biases_and_norms" else ()
    if args.optimizer == "SGD":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                         weight_decay=args.weight_decay, no_decay=skip)  # fmt: skip
    kind = optim.AdamW if args.optimizer == "AdamW" else optim.Adam
    return kind(params, lr=args.lr, weight_decay=args.weight_decay, no_decay=skip)


def schedule(opt, args, train_size, model=None):
    """--schedule cosine or linear over all the run's batches with --warmup-epochs; or None.

    With --init, the fine-tuning's two stages (transfer.schedule), the decay over the
    second one.
    """
    per_epoch = -(-train_size // args.batch_size)  # batches per epoch, the last one smaller
    if args.init:
        return transfer.schedule(opt, model, args, per_epoch, decay)
    return decay(opt, args, args.epochs * per_epoch, per_epoch)


def decay(opt, args, steps, per_epoch):
    """Cosine or Linear (as --schedule says) over `steps` batches with --warmup-epochs; or
    None.

    A warm-up as long as the run (--epochs 1 with one warm-up epoch) is cut to leave it
    its last step.
    """
    if args.schedule == "none" or steps < 1:
        return None
    kind = schedules.Linear if args.schedule == "linear" else schedules.Cosine
    return kind(
        opt,
        total_steps=steps,
        warmup_steps=min(round(args.warmup_epochs * per_epoch), steps - 1),
        min_lr=models.recipe(args.preset)["min_lr"],
    )


def augmentation(args, transforms=None):
    """With --augment, Augment(**transforms), or the preset's own, or AUGMENT; else None.

    --augment-scale S adds a random zoom in [1 - S, 1 + S] to those transforms.
    """
    if not args.augment:
        return None
    chosen = dict(transforms or models.recipe(args.preset)["augment"] or AUGMENT)
    if getattr(args, "augment_scale", None):
        chosen["scale"] = args.augment_scale
        shown = ", ".join(f"{k} {v:g}" for k, v in chosen.items())
        print(f"augmentation: {shown} (--augment-scale given)")
    return Augment(**chosen)
