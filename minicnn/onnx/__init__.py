"""ONNX export and import, with the optional extra `pip install minicnn[onnx]`.

    minicnn.onnx.export(model, "model.onnx")     # exporter.py: what the graph holds
    model = minicnn.onnx.load("model.onnx")      # importer.py: a Sequential

Importing this package does not import onnx (each function does when it runs), so
`import minicnn` works without the extra.
"""

from .common import OnnxError, require
from .exporter import export
from .importer import load

__all__ = ["OnnxError", "export", "load", "require"]
