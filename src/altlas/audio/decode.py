"""Audio files (WAV, FLAC, OGG/Vorbis and what else libsndfile reads) to mono float32 samples."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from altlas.errors import InputTooLargeError, InvalidInputError

__all__ = ["MAX_SAMPLES", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "UnsupportedAudioError", "decode_audio"]

MAX_SECONDS = 3 * 60 * 60  # longer uploads are refused before decoding
# Sample rates taken (Hz), checked before decoding: telephone audio's 8 kHz and anything odd down
# to 1 kHz, up to studio recordings' 384 kHz. Any rate in between resamples in time and memory
# proportional to the samples (audio/resample.py).
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
# Samples (frames x channels) decoded at most: 3 hours of 16 kHz mono. A FLAC of silence packs
# 3 hours at 384 kHz (4.1 billion samples, 16.6 GB decoded) into 15 MB.
MAX_SAMPLES = MAX_SECONDS * 16_000
_BLOCK = 1 << 16  # frames decoded at a time: channels are averaged block by block


class UnsupportedAudioError(InvalidInputError):
    """The bytes are not audio that can be decoded."""


def decode_audio(data: bytes, field: str = "file") -> tuple[np.ndarray, int]:
    """(mono samples in [-1, 1] float32, sample rate). Channels are averaged. The header is checked
    first: the rate (415), the length (MAX_SECONDS) and the samples (MAX_SAMPLES) (413)."""
    import soundfile

    if not data:
        raise UnsupportedAudioError("is empty", field=field)
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as handle:
            if not MIN_SAMPLE_RATE <= handle.samplerate <= MAX_SAMPLE_RATE:
                raise UnsupportedAudioError(
                    f"has a sample rate of {handle.samplerate:,} Hz; this server takes"
                    f" {MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz",
                    field=field,
                )
            if handle.frames > MAX_SECONDS * handle.samplerate:
                raise InputTooLargeError(
                    f"is {handle.frames / handle.samplerate:,.0f} s long; the limit is {MAX_SECONDS:,} s",
                    field=field,
                )
            if handle.frames * handle.channels > MAX_SAMPLES:
                raise InputTooLargeError(
                    f"holds {handle.frames * handle.channels:,} samples ({handle.channels} channels);"
                    f" the limit is {MAX_SAMPLES:,} (3 hours of 16 kHz mono)",
                    field=field,
                )
            mono, rate = _mono(handle), int(handle.samplerate)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UnsupportedAudioError(
            f"is not audio this server can decode (WAV, FLAC or OGG): {exc}", field=field
        ) from None
    if mono.size == 0:
        raise UnsupportedAudioError("holds no samples", field=field)
    if not np.isfinite(mono).all():
        raise InvalidInputError("holds NaN or infinite samples", field=field)
    return mono, rate


def _mono(handle: Any) -> np.ndarray:
    """The frames the header announces, channels averaged a block at a time (never all channels
    of the whole file at once)."""
    mono = np.empty(handle.frames, dtype=np.float32)
    done = 0
    for block in handle.blocks(_BLOCK, dtype="float32", always_2d=True):
        block = block[: len(mono) - done]
        mono[done : done + len(block)] = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        done += len(block)
        if done == len(mono):
            break
    return mono[:done]
