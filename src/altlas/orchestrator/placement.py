"""Where a model goes under the `auto` device policy: the GPU if its weights fit what is left of
the GPU memory budget, else the CPU (and the model's status says why).

The estimate is read off the files before loading: weight files count at their size, GGUF
files at 4x (4-bit blocks widened to 16-bit weights), plus a fifth for activations and caches;
what a loaded model really holds is measured afterwards and reported as its GPU bytes.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["estimate_bytes", "fits"]

_WEIGHTS = {".safetensors", ".bin", ".pt", ".pth", ".jit", ".onnx", ".gguf", ".ckpt"}


def estimate_bytes(source: Path) -> int:
    """GPU bytes a model loaded from `source` (a file or a folder) will roughly need."""
    files = [source] if source.is_file() else [p for p in source.rglob("*") if p.suffix in _WEIGHTS]
    total = sum(p.stat().st_size * (4 if p.suffix == ".gguf" else 1) for p in files if p.is_file())
    return int(total * 1.2)


def fits(need: int, used: int, budget: int) -> tuple[bool, str]:
    """(whether `need` more bytes fit a budget of which `used` is taken, a sentence for the status)."""
    left = max(0, budget - used)
    verdict = "fits" if need <= left else "does not fit"
    sentence = (
        f"needs about {need / 1e9:.2f} GB; {left / 1e9:.2f} GB of the {budget / 1e9:.1f} GB GPU budget left"
    )
    return need <= left, f"{sentence}: {verdict}"
