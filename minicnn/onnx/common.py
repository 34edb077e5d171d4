"""What export and import share: the error type, and the onnx module imported on demand."""

from ..io import ModelFileError


class OnnxError(ModelFileError):
    """An ONNX file minicnn cannot use; the message names the file and, where one is at
    fault, the node and its op."""


def require():
    """The onnx module, or a ModuleNotFoundError (an ImportError) that says how to install it."""
    try:
        import onnx
        import onnx.numpy_helper
    except ImportError as e:
        raise ModuleNotFoundError(
            f"minicnn's ONNX support needs the onnx package ({e}): pip install minicnn[onnx]",
            name="onnx",
        ) from None
    return onnx
