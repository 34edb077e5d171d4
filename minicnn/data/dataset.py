"""The containers every loader returns: `Split` (images + labels) and `Dataset` (the splits)."""

from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """A data source cannot be used as asked (layout, files, labels, splits): names the path."""


@dataclass(repr=False)
class Split:
    """Images and their labels, kept as uint8 until a batch is drawn.

    Shape:
    - images: uint8 (N, C, H, W), C-contiguous, pixel values 0..255
    - labels: int64 (N,), class indices into `Dataset.class_names`
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        images = np.ascontiguousarray(self.images)
        labels = np.ascontiguousarray(self.labels).reshape(-1)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(
                f"Split.images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}"
            )
        if len(labels) != len(images):
            raise ValueError(f"Split has {len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        return f"Split(images=uint8{self.images.shape}, labels=int64({len(self)},))"

    def subset(self, index):
        """Return a new Split holding the rows `index` (int array or boolean mask)."""
        return Split(self.images[index], self.labels[index])


@dataclass(repr=False)
class Dataset:
    """What `load` and `synthetic` return.

    - train, val: Split; test: Split or None (the source has no labelled test set); any of
      them is None when `load` was asked for other splits only (`splits=`)
    - class_names: readable name of each class index (sorted, stable order)
    - class_ids: the raw identifier per class (folder name or Tiny ImageNet wnid)
    - notes: what the loader decided (layout found, splits carved, cache used, ...)
    - skipped: images that could not be decoded (paths inside the source)
    - listed: images per part of the source, before any carving: {"train": n, "val": n,
      "test": n} (the parts it has), or {"all": n} for class folders with no split folders
    - all: with `load(splits="all")`, every image of the source in one Split, nothing carved
      (train, val and test are then None)
    """

    train: Split | None
    val: Split | None
    test: Split | None
    class_names: list
    class_ids: list = None
    notes: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    listed: dict = field(default_factory=dict)
    all: Split | None = None

    def __post_init__(self):
        self.class_names = [str(c) for c in self.class_names]
        if self.class_ids is None:
            self.class_ids = list(self.class_names)
        self.class_ids = [str(c) for c in self.class_ids]

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        """(C, H, W) of every image."""
        split = next(s for s in (self.train, self.val, self.test, self.all) if s is not None)
        return tuple(split.images.shape[1:])

    def __repr__(self):
        parts = [f"train={self.train!r}", f"val={self.val!r}", f"test={self.test!r}"]
        parts += [f"all={self.all!r}"] if self.all is not None else []
        return f"Dataset({', '.join(parts)}, classes={self.num_classes})"


def stratified_split(labels, fractions, seed=0):
    """Split indices class by class so each part keeps the class proportions.

    Inputs:
    - labels: int (N,)
    - fractions: tuple of floats, the share of each carved part (e.g. (0.1, 0.1) for val, test)
    - seed: int, the same seed gives the same split

    Returns:
    - list of sorted int64 index arrays: [rest, part_0, part_1, ...]; per class,
      part k gets round(n_class * fractions[k]) images, always leaving at least one in `rest`
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        start = 0
        for k, frac in enumerate(fractions):
            n = int(round(len(idx) * frac))
            n = max(0, min(n, len(idx) - start - 1))
            parts[k + 1].append(idx[start : start + n])
            start += n
        parts[0].append(idx[start:])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
