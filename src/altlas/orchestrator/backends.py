"""Backends: a loaded model of one task on one device, behind one small interface.

Each backend is built from a registry entry (`ModelSpec`), the path its source resolves to,
a device and a precision; `warmup` runs its code paths once so first requests pay no
set-up, and `close` lets go of what it holds. The work itself lives in the task's own
package (altlas.embeddings, altlas.generation); a backend only adapts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from altlas.audio.vad import VoiceActivityDetector
from altlas.embeddings.engine import Embedder
from altlas.errors import InvalidInputError
from altlas.generation.convert import model_folder
from altlas.generation.engine import TextGenerator
from altlas.generation.llama_cpp_engine import LlamaCppGenerator
from altlas.orchestrator.registry import ModelSpec
from altlas.vision.classifier import ImageClassifier

__all__ = ["Backend", "EmbeddingBackend", "GenerationBackend", "ImageBackend", "VadBackend", "build_backend"]


class Backend(Protocol):
    task: str
    device: torch.device

    def warmup(self, inputs: list[str]) -> None: ...

    def close(self) -> None: ...


class EmbeddingBackend:
    task = "embedding"

    def __init__(self, path: Path, device: torch.device, precision: str) -> None:
        self.embedder = Embedder(path, device=str(device), precision=precision)
        self.device = self.embedder.device

    def warmup(self, inputs: list[str]) -> None:
        self.embedder.warmup()
        if inputs:
            self.embedder.encode(inputs)

    def count_tokens(self, texts: list[str]) -> int:
        _ids, lengths = self.embedder.tokenizer(texts)
        return int(lengths.sum())

    def close(self) -> None:
        self.embedder.close()


class GenerationBackend:
    task = "generation"

    def __init__(self, generator: TextGenerator | LlamaCppGenerator, device: torch.device) -> None:
        self.generator = generator
        self.device = device

    def warmup(self, inputs: list[str]) -> None:
        self.generator.warmup(inputs)

    def close(self) -> None:
        if isinstance(self.generator, TextGenerator):
            self.generator.model = None
            self.generator.decoder = None  # its cache, buffers and CUDA graph
        else:
            self.generator.llm.close()


class VadBackend:
    task = "audio-vad"

    def __init__(self, path: Path, device: torch.device, chunk_seconds: float) -> None:
        self.detector = VoiceActivityDetector(path, device, chunk_seconds)
        self.device = device

    def warmup(self, inputs: list[str]) -> None:
        self.detector.warmup()

    def close(self) -> None:
        self.detector.model = None


class ImageBackend:
    task = "image-classification"

    def __init__(self, kind: str, path: Path, device: torch.device, options: dict[str, object]) -> None:
        self.classifier = ImageClassifier.load(kind, path, device, dict(options))
        self.device = self.classifier.device

    def warmup(self, inputs: list[str]) -> None:
        self.classifier.warmup()

    def close(self) -> None:
        self.classifier.model = None


def build_backend(spec: ModelSpec, path: Path, device: torch.device, cache_dir: Path) -> Backend:
    """The backend the spec names, loaded onto `device`."""
    from altlas.runtime.device import resolve_dtype

    if spec.task == "embedding":
        return EmbeddingBackend(path, device, spec.precision)
    if spec.task == "generation" and spec.backend == "transformers":
        # fp32 on CPU; on CUDA bf16 unless asked otherwise (fp16 overflows in some small LMs' activations)
        precision = (
            spec.precision if spec.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
        )
        max_context = spec.options.get("max_context")
        if max_context is not None and (not isinstance(max_context, int) or max_context < 16):
            raise InvalidInputError("must be an integer >= 16", field="options.max_context")
        fast_decode = spec.options.get("fast_decode")  # default: on CUDA for Llama-shaped models
        if fast_decode is not None and not isinstance(fast_decode, bool):
            raise InvalidInputError("must be true or false", field="options.fast_decode")
        dtype = resolve_dtype(precision, device)
        generator = TextGenerator(
            model_folder(path, cache_dir), device, dtype, max_context, fast_decode=fast_decode
        )
        return GenerationBackend(generator, device)
    if spec.task == "generation" and spec.backend == "llama-cpp":
        max_context = spec.options.get("max_context")
        llama = LlamaCppGenerator(path, gpu=device.type == "cuda", max_context=max_context)
        return GenerationBackend(llama, device)
    if spec.task == "audio-vad":
        chunk = spec.options.get("chunk_seconds", 30.0)
        if not isinstance(chunk, int | float) or not 1 <= chunk <= 3600:
            raise InvalidInputError("must be 1 to 3600 seconds", field="options.chunk_seconds")
        return VadBackend(path, device, float(chunk))
    if spec.task == "image-classification":
        return ImageBackend(spec.backend, path, device, spec.options)
    raise InvalidInputError(
        f"backend {spec.backend!r} for task {spec.task} is not available here", field="backend"
    )
