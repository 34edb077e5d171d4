"""Train the paper's CNN ("X-Ray Image Classification using CNN", Confluence 2019) with minicnn.

    python examples/train_paper.py                                  # built-in synthetic stand-in
    python examples/train_paper.py --data path/to/tiny-imagenet-200.zip   # the paper's data
    python examples/train_paper.py --download tiny-imagenet         # fetch it, then train
    python examples/train_paper.py --data path/to/chest_xray        # train|val|test/NORMAL|...
    python examples/train_paper.py --resume                         # continue an interrupted run
    python examples/train_paper.py --data my_classes/ --init MODEL.npz  # new classes: fine-tune
    python -m minicnn predict runs/paper-synthetic/model.npz some_image.png

With no --data it trains on minicnn.data.synthetic (coloured shapes and textures, a few
minutes on two cores), which shows that the code learns and says nothing about Tiny ImageNet.
The defaults are the preset's recipe (paper, paper13: the paper's Adam 1e-4, batch 32, 20
epochs, dropout 0.2; paper_bn: AdamW 2e-3 with weight decay 0.05, cosine schedule with one
warm-up epoch, label smoothing 0.1, augmentation, batch 128, 30 epochs: models.recipe), each
printed at start and overridable; the options shared with train_xray.py live in
minicnn/cli_train.py.
Everything a run produces goes to --out (default runs/<preset>-<data set>): model.npz (best
epoch by validation accuracy), checkpoint.npz (last epoch, for --resume), history.csv,
curves.png, confusion.csv, confusion.png (up to 20 classes) and results.json.
"""

import minicnn
from minicnn import cli_train, cli_transfer

if __name__ == "__main__":
    # ------------------------------------------------------------------ settings
    parser = cli_train.parser(
        __doc__,
        data_help="folder, .zip or MedMNIST .npz (default: the synthetic stand-in)",
        downloads=["tiny-imagenet", "pneumoniamnist"],
        out_help="output folder (default runs/<preset>-<data set>)",
    )
    parser.add_argument("--classes", type=int, default=20, help="classes of the synthetic set")
    parser.add_argument("--output", default="softmax", choices=["softmax", "sigmoid"])
    args = cli_train.parse(parser)  # the preset fills what the command line leaves out
    run = cli_train.RunFolder(args.out or f"runs/{args.preset}-{args.data_name}", args.resume)
    init = cli_transfer.Init(args, channels=3)  # --init MODEL.npz: fine-tune it (its channels)

    # ------------------------------------------------------------------ data
    if args.data is None:
        per_class = args.per_class or 400  # 80% train, 10% val, 10% test
        print(
            "No --data given: training on minicnn's built-in SYNTHETIC stand-in "
            f"({args.classes} classes of coloured shapes, {per_class} images each).\n"
            "It shows that the code learns; it says nothing about the paper's results.\n"
            "For the paper's data: --data path/to/tiny-imagenet-200.zip (or --download "
            "tiny-imagenet); for chest X-rays: --data path/to/chest_xray, or "
            "examples/train_xray.py.\n"
        )
        ds = minicnn.data.synthetic(args.classes, per_class, args.image_size, seed=args.seed,
                                    channels=init.channels)  # fmt: skip
    else:
        ds = cli_train.load_data(args, channels=init.channels)
    data = cli_train.Splits(ds, synthetic=args.data is None)  # train, val, test

    # ------------------------------------------------------------------ model
    if init:  # the paper's "train on new classes": its layers, a fresh head, its normalisation
        model = init.model(ds, output=args.output, seed=args.seed)
    else:
        build = cli_train.PRESETS[args.preset]  # models.paper, paper13 or paper_bn
        model = build(num_classes=ds.num_classes, in_channels=ds.image_shape[0],
                      output=args.output, image_size=args.image_size, dropout=args.dropout,
                      seed=args.seed)  # fmt: skip
        model.class_names = ds.class_names  # stored by save, with the normalisation:
        model.mean, model.std = minicnn.data.channel_stats(ds.train)  # per channel, train split
    model.summary()

    # ------------------------------------------------------------------ optimizer and loss
    optimizer = cli_train.optimizer(model, args)  # Adam or AdamW, betas 0.9 / 0.999, eps 1e-8
    schedule = cli_train.schedule(optimizer, args, len(data.train), model)  # None, Cosine, 2 stages
    if args.output == "sigmoid":
        loss_fn = minicnn.BinaryCrossEntropy()  # takes the logits, as SoftmaxCrossEntropy
    else:
        loss_fn = minicnn.SoftmaxCrossEntropy(label_smoothing=args.label_smoothing)
    augment = cli_train.augmentation(args)  # flips, rotations, shifts, brightness, contrast

    # ------------------------------------------------------------------ fit
    settings = vars(args)  # kept in model.npz and results.json
    history, seconds = cli_train.fit(
        model, loss_fn, optimizer, data, args, run, settings, augment, schedule
    )

    # ------------------------------------------------------------------ results
    cli_train.write_results(run, history, seconds, loss_fn, data, settings)
