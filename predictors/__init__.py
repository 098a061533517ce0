"""modelplane predictors: ONNX and Torch models over the V2 Open Inference Protocol."""

__version__ = "0.1.0"
