"""Audio files (WAV, FLAC, OGG/Vorbis and what else libsndfile reads) to mono float32 samples."""

from __future__ import annotations

import io

import numpy as np

from altlas.errors import InvalidInputError

__all__ = ["MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "UnsupportedAudioError", "decode_audio"]

MAX_SECONDS = 3 * 60 * 60  # longer uploads are refused before decoding
# Sample rates taken (Hz), checked before decoding: telephone audio's 8 kHz and anything odd down
# to 1 kHz, up to studio recordings' 384 kHz. Any rate in between resamples in time and memory
# proportional to the samples (audio/resample.py).
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000


class UnsupportedAudioError(InvalidInputError):
    """The bytes are not audio that can be decoded."""


def decode_audio(data: bytes, field: str = "file") -> tuple[np.ndarray, int]:
    """(mono samples in [-1, 1] float32, sample rate). Channels are averaged."""
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
                raise InvalidInputError(
                    f"is {handle.frames / handle.samplerate:,.0f} s long; the limit is {MAX_SECONDS:,} s",
                    field=field,
                )
            samples = handle.read(dtype="float32", always_2d=True)
            rate = int(handle.samplerate)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UnsupportedAudioError(
            f"is not audio this server can decode (WAV, FLAC or OGG): {exc}", field=field
        ) from None
    if samples.size == 0:
        raise UnsupportedAudioError("holds no samples", field=field)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(mono).all():
        raise InvalidInputError("holds NaN or infinite samples", field=field)
    return np.ascontiguousarray(mono, dtype=np.float32), rate
