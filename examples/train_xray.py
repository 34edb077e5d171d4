"""Binary chest X-ray screening with the paper's CNN: grayscale in, one sigmoid unit out.

    python examples/train_xray.py                            # synthetic 2-class stand-in
    python examples/train_xray.py --data path/to/chest_xray  # train|val|test/NORMAL|PNEUMONIA
    python examples/train_xray.py --data pneumoniamnist_64.npz  # MedMNIST's PneumoniaMNIST
    python examples/train_xray.py --download pneumoniamnist  # fetch it, then train
    python examples/train_xray.py --data pneumoniamnist.npz --init MODEL.npz  # fine-tune

The network is models.paper with in_channels=1 and output="sigmoid": with two classes the
last Dense has a single unit and P(class 1) = sigmoid(logit) (minicnn/heads.py); the loss is
binary cross-entropy on the logit. Class 1 (the second name in sorted order: PNEUMONIA, or
"pneumonia" in PneumoniaMNIST) is the positive class.

Chest X-ray sets are imbalanced (about three pneumonia images per normal one). With
--balance pos_weight (the default) the positive term of the loss is weighted by
n_negative / n_positive from the training split, so both classes weigh the same in total;
--balance none trains on the raw loss. The decision threshold is chosen on the validation
split: the highest one whose sensitivity there is at least 0.95 (--target-sensitivity,
or --threshold to fix it). Results on the test split at that threshold, each with a 95%
bootstrap interval: sensitivity (pneumonia found), specificity (normal cleared), PPV, NPV,
accuracy, F1 and ROC AUC; roc.png; plus the files train_paper.py writes (model.npz, which
keeps the threshold, checkpoint.npz, history.csv, curves.png, confusion.*, results.json).
--init MODEL.npz fine-tunes a trained model (e.g. a Tiny ImageNet one): the new head alone
first, then every layer (minicnn/cli_transfer.py). The options shared with train_paper.py
live in minicnn/cli_train.py.
"""

import numpy as np

import minicnn
from minicnn import cli_train, cli_transfer
from minicnn.data import DataError

if __name__ == "__main__":
    # ------------------------------------------------------------------ settings
    parser = cli_train.parser(
        __doc__,
        data_help="chest X-ray folder / .zip, or a PneumoniaMNIST .npz (default: synthetic)",
        downloads=["pneumoniamnist"],
        out_help="output folder (default runs/xray-<data set>)",
        synthetic={"epochs": 8},  # the stand-in learns in fewer epochs than the paper's 20
    )
    add = parser.add_argument
    add("--balance", default="pos_weight", choices=["pos_weight", "none"], help="imbalance")
    args = cli_train.parse(parser)
    run = cli_train.RunFolder(args.out or f"runs/xray-{args.data_name}", args.resume)
    init = cli_transfer.Init(args, channels=1)  # --init MODEL.npz: fine-tune it (its channels)

    # ------------------------------------------------------------------ data
    if args.data is None:
        print(
            "No --data given: training on a SYNTHETIC grayscale 2-class stand-in, made "
            "imbalanced like chest X-rays (3 positives per negative).\n"
            "It shows that the code learns; it says nothing about X-rays. For real data: "
            "--data path/to/chest_xray or --download pneumoniamnist.\n"
        )
        per_class = args.per_class or 400
        ds = minicnn.data.synthetic(2, per_class, args.image_size, seed=args.seed,
                                    channels=init.channels)  # fmt: skip
        ds.class_names = ["negative", "positive"]
        rng = np.random.default_rng(args.seed)  # keep one negative in three in every split
        for split in ("train", "val", "test"):
            s = getattr(ds, split)
            setattr(ds, split, s.subset((s.labels == 1) | (rng.random(len(s)) < 1 / 3)))
    else:
        ds = cli_train.load_data(args, channels=init.channels)  # gray, or as --init wants
    if ds.num_classes != 2:
        raise DataError(f"{args.data} has {ds.num_classes} classes; X-ray screening needs 2")
    data = cli_train.Splits(ds, synthetic=args.data is None)
    counts = np.bincount(ds.train.labels, minlength=2)  # negatives, positives

    # ------------------------------------------------------------------ model
    if init:  # the trained layers, a fresh one-logit head, the source's normalisation
        model = init.model(ds, output="sigmoid", seed=args.seed)
    else:
        build = cli_train.PRESETS[args.preset]
        model = build(num_classes=2, in_channels=1, output="sigmoid",  # one logit, gray in
                      image_size=args.image_size, dropout=args.dropout, seed=args.seed)  # fmt: skip
        model.class_names = ds.class_names
        model.mean, model.std = minicnn.data.channel_stats(ds.train)

    # ------------------------------------------------------------------ loss: the imbalance
    neg, pos = ds.class_names
    if args.balance == "pos_weight":
        pos_weight = float(counts[0] / max(counts[1], 1))  # n_negative / n_positive
        how = (
            f"positive term of the loss weighted by n_{neg} / n_{pos} = "
            f"{counts[0]} / {counts[1]} = {pos_weight:.3f}"
        )
    else:
        pos_weight, how = None, "not handled (--balance none): raw binary cross-entropy"
    print(f"class imbalance: {how}")
    loss_fn = minicnn.BinaryCrossEntropy(pos_weight=pos_weight)
    if args.label_smoothing:
        print("note: label smoothing is for softmax heads; this one sigmoid unit trains without")
    optimizer = cli_train.optimizer(model, args)  # the preset's: Adam, or AdamW for paper_bn
    schedule = cli_train.schedule(optimizer, args, len(data.train), model)  # --init: 2 stages
    # no flips for X-rays (the heart is on the left), and gentler changes than for photos
    augment = cli_train.augmentation(args, dict(rotate=5, shift=0.05, brightness=0.1, contrast=0.1))

    # ------------------------------------------------------------------ fit
    settings = vars(args) | {"pos_weight": pos_weight}
    history, seconds = cli_train.fit(
        model, loss_fn, optimizer, data, args, run, settings, augment, schedule
    )

    # ------------------------------------------------------------------ results
    imbalance = {"train_counts": counts.tolist(), "handling": how}
    cli_train.write_results(run, history, seconds, loss_fn, data, settings,
                            extra={"imbalance": imbalance})  # fmt: skip
