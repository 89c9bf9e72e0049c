"""Vision: image classification (a shipped ImageNet classifier, or a user's TorchScript / ONNX model)."""

from altlas.vision.classifier import ImageClassifier, Prediction, decode_image

__all__ = ["ImageClassifier", "Prediction", "decode_image"]
