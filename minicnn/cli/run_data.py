"""The data of a training run: --data (or --download), or a synthetic stand-in; its splits.

- `load_data`: minicnn.data.load(--data) as the options say, --per-class kept per class;
  splits carved from train (a folder without val/ or test/, e.g. train/<class>/ alone) keep
  each group's images on one side (--group-by; minicnn.data.groups), and load's notes say
  how many groups and images each side got;
- `stand_in`: with no --data, minicnn.data.synthetic's coloured shapes (--classes of them);
- `screening_stand_in`: with no --data and two classes, a grayscale two-class synthetic set
  made imbalanced like chest X-rays (three positives per negative);
- `Splits`: what the run uses: train, val (picks the best epoch), test (reported on).
"""

import numpy as np

from ..data import DataError, load, synthetic
from ..data.sources import printable

PER_CLASS = 400  # synthetic images made per class when --per-class is not given


def load_data(args, channels):
    """minicnn.data.load(--data) as the options say; at most --per-class training images
    of each class (a choice seeded by --seed). Carved splits follow --group-by and
    --split-seed, which the model file keeps, so that evaluate can carve the same ones again."""
    ds = load(
        args.data,
        image_size=args.image_size,
        channels=channels,
        seed=args.split_seed,
        group_by=getattr(args, "group_by", "auto"),
        cache=not args.no_cache,
        workers=args.workers,
        progress=not args.no_progress,
    )
    if ds.train is None:
        raise DataError(f"{printable(str(args.data))} has no train split to train on (only "
                        "test/ or val/ folders): score it with minicnn evaluate")  # fmt: skip
    if args.per_class:
        rng = np.random.default_rng(args.seed)
        keep = [
            rng.permutation(np.flatnonzero(ds.train.labels == c))[: args.per_class]
            for c in range(ds.num_classes)
        ]
        ds.train = ds.train.subset(np.sort(np.concatenate(keep)))
    return ds


def stand_in(args, channels):
    """--classes classes of coloured shapes and textures (minicnn.data.synthetic), said loudly:
    it shows that the code learns and says nothing about the paper's results."""
    per_class = args.per_class or PER_CLASS  # 80% train, 10% val, 10% test
    print(
        "No --data given: training on minicnn's built-in SYNTHETIC stand-in "
        f"({args.classes} classes of coloured shapes, {per_class} images each).\n"
        "It shows that the code learns; it says nothing about the paper's results.\n"
        "For the paper's data: --data path/to/tiny-imagenet-200.zip (or --download "
        "tiny-imagenet); for chest X-rays: --data path/to/chest_xray, or minicnn train "
        "--screening (examples/train_xray.py).\n"
    )
    return synthetic(args.classes, per_class, args.image_size, seed=args.seed, channels=channels)


def screening_stand_in(args, channels):
    """Two synthetic classes, negative and positive, one negative in three kept in every split
    (chest X-ray sets hold about three pneumonia images per normal one)."""
    print(
        "No --data given: training on a SYNTHETIC grayscale 2-class stand-in, made "
        "imbalanced like chest X-rays (3 positives per negative).\n"
        "It shows that the code learns; it says nothing about X-rays. For real data: "
        "--data path/to/chest_xray or --download pneumoniamnist.\n"
    )
    per_class = args.per_class or PER_CLASS
    ds = synthetic(2, per_class, args.image_size, seed=args.seed, channels=channels)
    ds.class_names = ["negative", "positive"]
    rng = np.random.default_rng(args.seed)
    for split in ("train", "val", "test"):
        s = getattr(ds, split)
        setattr(ds, split, s.subset((s.labels == 1) | (rng.random(len(s)) < 1 / 3)))
    return ds


def two_classes(ds, args):
    """ds, checked to have the two classes of a screening run (DataError otherwise)."""
    if ds.num_classes != 2:
        name = printable(str(args.data))
        raise DataError(f"{name} has {ds.num_classes} classes; X-ray screening needs 2")
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
