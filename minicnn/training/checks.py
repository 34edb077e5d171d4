"""What fit checks before the first step, so that bad input fails in one clear line."""

from .evaluate import num_classes_of


def check_split(model, split, name="train"):
    """Raise ValueError before training if a split does not fit the model."""
    if model.input_shape is None:
        raise ValueError("fit needs a model built with input_shape (C, H, W)")
    if split.images.ndim != 4 or split.images.shape[1:] != tuple(model.input_shape):
        raise ValueError(
            f"the {name} images have shape {split.images.shape[1:]} per image, the model "
            f"expects {tuple(model.input_shape)} (C, H, W); load the data with "
            f"image_size={model.input_shape[1]}, channels={model.input_shape[0]}"
        )
    K = num_classes_of(model)
    labels = split.labels
    if len(labels) and (labels.min() < 0 or labels.max() >= K):
        bad = labels[(labels < 0) | (labels >= K)]
        raise ValueError(
            f"the {name} split has labels outside the model's {K} classes [0, {K - 1}]: "
            f"{sorted(set(bad.tolist()))[:10]} ({len(bad)} images)"
        )


def check_inputs(model, optimizer, train, val):
    """The splits fit the model, train has images, and the optimizer has something to train."""
    check_split(model, train, "train")
    if val is not None:
        check_split(model, val, "val")
    if len(train) == 0:
        raise ValueError("the train split is empty")
    if not any(p.trainable for p in getattr(optimizer, "parameters", model.parameters())):
        raise ValueError(
            f"every parameter the optimizer updates is frozen (frozen layers: "
            f"{model.frozen()}), so training would change nothing; unfreeze some first "
            "(model.unfreeze() for all but the head, model.unfreeze(len(model)) for all)"
        )
