"""Audio files (WAV, FLAC, OGG/Vorbis and what else libsndfile reads) to mono float32 samples."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from altlas.errors import (  # UnsupportedAudioError was defined here: still importable from here
    InputTooLargeError,
    InvalidInputError,
    UnsupportedAudioError,
)

__all__ = [
    "MAX_SAMPLES",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "AudioFile",
    "UnsupportedAudioError",
    "decode_audio",
    "open_audio",
]

# Longer uploads are refused before decoding. Memory does not grow with the length (uploads are
# decoded, resampled and detected a block at a time: audio/vad.py); this bounds the work: an
# hour of audio takes the VAD about 10-30 s on two busy CPU cores, within the request timeout.
MAX_SECONDS = 60 * 60
# Sample rates taken (Hz), checked before decoding: telephone audio's 8 kHz and anything odd down
# to 1 kHz, up to studio recordings' 384 kHz. Any rate in between resamples in time and memory
# proportional to the samples (audio/resample.py).
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
# Samples (frames x channels) decoded at most: an hour of 16 kHz mono (18.75 s of 8 channels at
# 384 kHz). A FLAC of silence packs an hour at 384 kHz (1.4 billion samples) into 5 MB.
MAX_SAMPLES = MAX_SECONDS * 16_000
_BLOCK = 1 << 16  # frames decoded at a time: channels are averaged block by block


@dataclass(frozen=True)
class AudioFile:
    """An upload whose header passed the checks, decoded only when read, a block at a time."""

    data: bytes
    rate: int
    frames: int  # as the header announces
    channels: int
    field: str = "file"

    def blocks(self, frames: int = _BLOCK) -> Iterator[np.ndarray]:
        """Mono float32 blocks in [-1, 1] of up to `frames` frames, channels averaged: the whole
        file is never held decoded. A block the decoder fails on, or that holds NaN or infinite
        samples, raises naming `field`, as does a file that yields no samples."""
        import soundfile

        done = 0
        try:
            with soundfile.SoundFile(io.BytesIO(self.data)) as handle:
                for block in handle.blocks(frames, dtype="float32", always_2d=True):
                    block = block[: self.frames - done]
                    mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                    if not np.isfinite(mono).all():
                        raise InvalidInputError("holds NaN or infinite samples", field=self.field)
                    done += len(mono)
                    if len(mono):
                        yield np.ascontiguousarray(mono)
                    if done == self.frames:
                        break
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
            raise _undecodable(exc, self.field) from None
        if done == 0:
            raise UnsupportedAudioError("holds no samples", field=self.field)


def open_audio(data: bytes, field: str = "file") -> AudioFile:
    """The upload, its header checked: the rate (415), the length (MAX_SECONDS) and the samples
    (MAX_SAMPLES) (413). Nothing is decoded yet."""
    import soundfile

    if not data:
        raise UnsupportedAudioError("is empty", field=field)
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as handle:
            audio = AudioFile(data, int(handle.samplerate), int(handle.frames), int(handle.channels), field)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _undecodable(exc, field) from None
    if not MIN_SAMPLE_RATE <= audio.rate <= MAX_SAMPLE_RATE:
        raise UnsupportedAudioError(
            f"has a sample rate of {audio.rate:,} Hz; this server takes"
            f" {MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz",
            field=field,
        )
    if audio.frames > MAX_SECONDS * audio.rate:
        raise InputTooLargeError(
            f"is {audio.frames / audio.rate:,.0f} s long; the limit is {MAX_SECONDS:,} s", field=field
        )
    if audio.frames * audio.channels > MAX_SAMPLES:
        raise InputTooLargeError(
            f"holds {audio.frames * audio.channels:,} samples ({audio.channels} channels);"
            f" the limit is {MAX_SAMPLES:,} (an hour of 16 kHz mono)",
            field=field,
        )
    if audio.frames <= 0:
        raise UnsupportedAudioError("holds no samples", field=field)
    return audio


def decode_audio(data: bytes, field: str = "file") -> tuple[np.ndarray, int]:
    """(mono samples in [-1, 1] float32, sample rate) of a whole upload, checked as `open_audio`
    and `AudioFile.blocks` check it. The service streams uploads instead (it never holds them
    decoded); this is for tools and tests."""
    audio = open_audio(data, field)
    return np.concatenate(list(audio.blocks())), audio.rate


def _undecodable(exc: BaseException, field: str) -> UnsupportedAudioError:
    return UnsupportedAudioError(
        f"is not audio this server can decode (WAV, FLAC or OGG): {exc}", field=field
    )
