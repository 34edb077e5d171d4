"""minicnn export: a model file as ONNX, for ONNX Runtime and others (pip install minicnn[onnx]).

    minicnn export examples/models/paper-tiny-imagenet.npz paper.onnx
    minicnn export MODEL.npz OUT.onnx --normalize metadata --opset 18

The graph takes uint8 images (N, C, H, W) and gives the probabilities predict prints; with
--normalize metadata it takes the normalised float batch instead (docs/onnx.md).
"""

from .common import CommandError, add_command, load_model


def run_export(args):
    """Write args.model as ONNX to args.out; returns the exit code (0)."""
    model = load_model(args.model)
    try:
        from .. import onnx as minicnn_onnx

        proto = minicnn_onnx.export(model, args.out, opset=args.opset, normalize=args.normalize)
    except ImportError as e:
        raise CommandError(str(e)) from None
    except ValueError as e:  # an opset out of range, a model that cannot be described
        raise CommandError(f"cannot export {args.model}: {e}") from None
    source = proto.graph.input[0]
    shape = [d.dim_param or d.dim_value for d in source.type.tensor_type.shape.dim]
    K = proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    kind = "uint8 images" if args.normalize == "graph" else "normalised float32"
    print(f"wrote {args.out}: opset {proto.opset_import[0].version}, input {source.name!r} "
          f"{kind} ({', '.join(map(str, shape))}), output 'probabilities' (N, {K})")  # fmt: skip
    return 0


def add_commands(commands):
    """Register `export` on the subparsers of `python -m minicnn`."""
    e = add_command(
        commands, "export", __doc__, help="write a model file as ONNX (pip install minicnn[onnx])"
    )
    e.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    e.add_argument("out", metavar="OUT", help="the .onnx file to write")
    e.add_argument("--opset", type=int, help="ONNX opset, 17 or newer (17)")
    e.add_argument(
        "--normalize",
        choices=["graph", "metadata"],
        default="graph",
        help="graph: the input is uint8 images, normalised in the graph (default); "
        "metadata: the input is the normalised batch, mean and std in metadata_props",
    )
    e.set_defaults(run=run_export)
