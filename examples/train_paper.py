"""Train the paper's CNN ("X-Ray Image Classification using CNN", Confluence 2019) with minicnn.

    python examples/train_paper.py                                  # built-in synthetic stand-in
    python examples/train_paper.py --data path/to/tiny-imagenet-200.zip   # the paper's data
    python examples/train_paper.py --download tiny-imagenet         # fetch it, then train
    python examples/train_paper.py --data path/to/chest_xray        # train|val|test/NORMAL|...
    python examples/train_paper.py --resume                         # continue an interrupted run
    python examples/train_paper.py --data my_classes/ --init MODEL.npz  # new classes: fine-tune
    python -m minicnn predict runs/paper-synthetic/model.npz some_image.png

The same as `minicnn train` (minicnn/cli/train.py), which an installed minicnn has without
this repository. With no --data it trains on minicnn.data.synthetic (coloured shapes and
textures, a few minutes on two cores), which shows that the code learns and says nothing
about Tiny ImageNet. The defaults are the preset's recipe (paper, paper13: the paper's Adam
1e-4, batch 32, 20 epochs, dropout 0.2; paper_bn: AdamW 2e-3 with weight decay 0.05, cosine
schedule with one warm-up epoch, label smoothing 0.1, augmentation, batch 128, 30 epochs:
models.recipe), each printed at start and overridable.
Everything a run produces goes to --out (default runs/<preset>-<data set>): model.npz (best
epoch by validation accuracy), checkpoint.npz (last epoch, for --resume), history.csv,
curves.png, confusion.csv, confusion.png (up to 20 classes) and results.json.
"""

from minicnn.cli import options, train
from minicnn.cli.results import write_results
from minicnn.cli.run_data import Splits
from minicnn.cli.run_folder import RunFolder
from minicnn.cli.transfer import Init

if __name__ == "__main__":
    # ------------------------------------------------------------------ settings
    parser = train.parser(__doc__, screening=False)  # minicnn train's options (--classes, ...)
    args = train.parse(parser)  # the preset fills what the command line leaves out; printed
    run = RunFolder(train.out_folder(args), args.resume)  # locked while this run lasts
    init = Init(args, channels=3)  # --init MODEL.npz: fine-tune it (its channels)

    # ------------------------------------------------------------------ data
    ds = train.dataset(args, init.channels)  # --data, or the synthetic stand-in (said so)
    data = Splits(ds, synthetic=args.data is None)  # train, val, test

    # ------------------------------------------------------------------ model
    model = train.new_model(args, ds, init)  # models.paper (or --preset's), or --init's layers
    model.summary()  # under a new head; with the class names and normalisation it saves

    # ------------------------------------------------------------------ optimizer and loss
    optimizer = options.optimizer(model, args)  # Adam or AdamW, betas 0.9 / 0.999, eps 1e-8
    schedule = options.schedule(optimizer, args, len(data.train), model)  # None, Cosine, 2 stages
    loss_fn = train.loss(args)  # softmax cross-entropy; --output sigmoid: binary, on the logit
    augment = options.augmentation(args)  # flips, rotations, shifts, brightness, contrast

    # ------------------------------------------------------------------ fit
    settings = vars(args)  # kept in model.npz and results.json
    history, seconds = train.fit(
        model, loss_fn, optimizer, data, args, run, settings, augment, schedule
    )

    # ------------------------------------------------------------------ results
    write_results(run, history, seconds, loss_fn, data, settings)
