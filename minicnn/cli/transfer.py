"""--init MODEL.npz: minicnn train (and the examples) fine-tune a trained model (transfer learning).

minicnn.transfer keeps every layer of the model file but its last Dense, the head, which a
fresh head for this data's classes replaces. The fine-tuning then runs in two stages
(transfer.FineTune, printed at the start): the new head alone for --head-epochs epochs, the
backbone frozen, at --head-lr (default 10 x --lr); then every layer (from --keep-frozen on)
at --lr, or the preset's schedule (cosine, linear), from a fresh optimizer state, until --epochs
(--keep-statistics: the BatchNorms on the model file's running statistics throughout). The
architecture comes from the file (--preset gives only the recipe) and so does the
normalisation: images are preprocessed as the source's were. A 3-channel model takes gray
images as RGB replicas (exact); --fold-gray folds its first convolution into one channel
instead. A model made for another input size is refused, naming both shapes.
"""

import argparse
import math
import os

from ..io import load
from ..transfer import FineTune, transfer
from .common import CommandError

HEAD_EPOCHS = 3  # the new head alone, before everything trains
HEAD_LR_FACTOR = 10  # the head's rate, times --lr


def _count(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_options(p):
    """--init, --head-epochs, --head-lr, --keep-frozen, --keep-statistics, --fold-gray on a
    training parser."""
    add = p.add_argument
    add("--init", metavar="MODEL.npz", help="fine-tune this trained model (a new head)")
    add(
        "--head-epochs",
        type=_count,
        default=HEAD_EPOCHS,
        help=f"with --init: epochs of the new head alone, the rest frozen ({HEAD_EPOCHS})",
    )
    add(
        "--head-lr",
        type=float,
        help=f"with --init: the head's rate in those epochs (default {HEAD_LR_FACTOR} x --lr)",
    )
    add(
        "--keep-frozen",
        type=_count,
        default=0,
        metavar="N",
        help="with --init: layers before index N stay frozen after the head epochs (0)",
    )
    add(
        "--keep-statistics",
        action="store_true",
        help="with --init: the BatchNorms keep the model file's running statistics once "
        "unfrozen (their gamma and beta still train)",
    )
    add(
        "--fold-gray",
        action="store_true",
        help="with --init of an RGB model: fold its first conv into one gray channel "
        "(default: gray images go in as RGB replicas)",
    )


class Init:
    """The --init model of a run; false without --init.

    channels: what the data is to be loaded with (the model's, 1 with --fold-gray; without
    --init the example's own, `channels`).
    """

    def __init__(self, args, channels):
        self.args, self.source, self.channels = args, None, channels
        if not args.init:
            return
        self.source = load(args.init)
        C, H, W = self.source.input_shape
        self.channels = 1 if args.fold_gray else C
        S = args.image_size
        if (H, W) != (S, S):
            raise CommandError(
                f"--init {args.init} takes images of shape {(C, H, W)} (C, H, W), this run "
                f"makes {(self.channels, S, S)} (--image-size {S}): use --image-size {H}, or "
                "another model"
            )
        kept = "" if self.source.mean is None else " and normalisation"
        fold = "; its first conv folded to one gray channel" if args.fold_gray and C > 1 else ""
        print(
            f"fine-tuning {args.init}: {len(self.source)} layers, input {(C, H, W)}; its "
            f"architecture{kept} are kept (--preset {args.preset} gives the recipe only){fold}"
        )

    def __bool__(self):
        return self.source is not None

    def model(self, ds, output, seed):
        """The source's layers under a fresh head for ds's classes, all but the head frozen."""
        in_channels = 1 if self.args.fold_gray else None
        model = transfer(self.source, ds.num_classes, output, in_channels, freeze=True, seed=seed)
        model.class_names = ds.class_names
        return model


def network(settings):
    """What a run trains, in words: the preset, or the --init model fine-tuned."""
    init = settings.get("init")
    return settings["preset"] if not init else f"{os.path.basename(init)} fine-tuned"


def schedule(opt, model, args, per_epoch, decay):
    """The two stages as a FineTune schedule, printed. decay(opt, args, steps, per_epoch)
    makes the second stage's schedule (None: --lr throughout)."""
    head = model.head_index()
    if args.keep_frozen > head:
        raise CommandError(
            f"--keep-frozen {args.keep_frozen} would freeze the head (layer {head}) too: "
            f"nothing would train; use at most {head}"
        )
    head_epochs = min(args.head_epochs, args.epochs)
    head_lr = args.head_lr if args.head_lr is not None else HEAD_LR_FACTOR * args.lr
    then = decay(opt, args, (args.epochs - head_epochs) * per_epoch, per_epoch)
    head_steps = head_epochs * per_epoch if head_epochs < args.epochs else math.inf
    s = FineTune(opt, model, head_steps, head_lr, then, args.keep_frozen, args.keep_statistics)
    print("fine-tuning schedule (--head-epochs, --head-lr, --lr, --keep-frozen, --epochs):")
    for line in s.stages(per_epoch):
        print(f"  {line}")
    return s
