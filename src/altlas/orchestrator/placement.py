"""How much GPU memory a model's weights will take, read off its files before loading (the memory
budget in altlas.orchestrator.memory decides where it goes).

Weight files count at their size, GGUF files at 4x (4-bit blocks widened to 16-bit weights),
plus a fifth for buffers, workspaces and caches; a batch's activations are reserved apart
(memory.activation_reserve). What a loaded model really holds is measured afterwards and
reported as its GPU bytes.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["estimate_bytes"]

_WEIGHTS = {".safetensors", ".bin", ".pt", ".pth", ".jit", ".onnx", ".gguf", ".ckpt"}


def estimate_bytes(source: Path) -> int:
    """GPU bytes a model loaded from `source` (a file or a folder) will roughly need."""
    files = [source] if source.is_file() else [p for p in source.rglob("*") if p.suffix in _WEIGHTS]
    total = sum(p.stat().st_size * (4 if p.suffix == ".gguf" else 1) for p in files if p.is_file())
    return int(total * 1.2)
