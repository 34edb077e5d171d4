"""The version of minicnn: one place, read by setup.cfg, `minicnn --version` and ONNX files."""

__version__ = "0.3.0"
