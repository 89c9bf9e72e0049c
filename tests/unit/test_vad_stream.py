"""Voice detection over a stream: an upload is decoded, resampled and detected a block at a time,
its pieces run side by side a group at a time (or alone, as their audio arrives, when a piece is
longer than a group), and the probabilities and segments are those of running every piece of the
whole signal side by side at once (the detector before it streamed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from altlas.audio.decode import open_audio
from altlas.audio.resample import resample
from altlas.audio.vad import FRAME, SAMPLE_RATE, VoiceActivityDetector, speech_segments

from ..media_bytes import wav

SPEECH = Path(__file__).resolve().parents[1] / "data" / "audio" / "speech_en.wav"


def whole_signal(detector: VoiceActivityDetector, samples: np.ndarray, rate: int) -> np.ndarray:
    """The reference: the whole signal resampled at once, every piece side by side in one batch."""
    audio = resample(torch.as_tensor(samples, dtype=torch.float32), rate, SAMPLE_RATE)
    frames = max(1, math.ceil(audio.numel() / FRAME))
    pieces, steps = math.ceil(frames / detector.chunk_frames), min(frames, detector.chunk_frames)
    padded = torch.zeros(pieces * steps * FRAME)
    padded[: audio.numel()] = audio
    batch = padded.view(pieces, steps, FRAME)
    out = torch.empty(pieces, steps)
    with torch.inference_mode():
        detector.model.reset_states()
        for step in range(steps):
            out[:, step] = detector.model(batch[:, step], SAMPLE_RATE)[:, 0]
    return out.reshape(-1)[:frames].numpy()


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """Speech, silence, speech: 10 s at 22,050 Hz."""
    samples, rate = soundfile.read(SPEECH, dtype="float32")
    return np.concatenate([samples, np.zeros(2 * rate, np.float32), samples]), rate


@pytest.mark.parametrize(
    ("chunk_seconds", "group_samples"),
    [(30.0, None), (2.0, 2 * 32_000 + 5), (1.0, 3 * 16_000), (2.0, 32_000), (1.0, 100)],
    ids=["one-group", "groups-of-2", "groups-of-3", "alone", "alone-tiny-group"],
)
@pytest.mark.parametrize("rate", [None, 8_009])
def test_a_stream_detects_as_the_whole_signal_does(
    speech: tuple[np.ndarray, int], chunk_seconds: float, group_samples: int | None, rate: int | None
) -> None:
    samples, native = speech
    if rate is not None:
        samples = resample(torch.from_numpy(samples), native, rate).numpy()
    rate = rate or native
    detector = VoiceActivityDetector(chunk_seconds=chunk_seconds, group_samples=group_samples)
    blocks = [samples[i : i + 7_777] for i in range(0, len(samples), 7_777)]
    streamed, read = detector.stream_probabilities(iter(blocks), rate)
    reference = whole_signal(detector, samples, rate)
    assert read == len(samples) and streamed.shape == reference.shape
    np.testing.assert_allclose(streamed, reference, atol=1e-4)  # batch sizes differ: float32 sums
    duration = len(samples) / rate
    expected = speech_segments(reference, duration, 0.5, 250, 100, 30)
    assert len(expected) >= 2 and speech_segments(streamed, duration, 0.5, 250, 100, 30) == expected


def test_an_upload_is_detected_a_block_at_a_time_as_the_whole_file_was() -> None:
    """speech_en.wav read as the server reads it (AudioFile.blocks) gives the segments the
    detector gave it whole before it streamed."""
    data = SPEECH.read_bytes()
    audio = open_audio(data)
    detector = VoiceActivityDetector()
    segments, duration = detector.stream_segments(audio.blocks(frames=1_000), audio.rate)
    samples, rate = soundfile.read(SPEECH, dtype="float32")
    reference = speech_segments(whole_signal(detector, samples, rate), len(samples) / rate, 0.5, 250, 100, 30)
    assert duration == len(samples) / rate and segments == reference and segments


def test_silence_of_any_length_has_no_speech() -> None:
    detector = VoiceActivityDetector(chunk_seconds=1.0, group_samples=3 * 16_000)
    for seconds in (0.001, 0.5, 7.3):
        audio = open_audio(wav(np.zeros(int(8_009 * seconds)), 8_009))
        probabilities, read = detector.stream_probabilities(audio.blocks(), audio.rate)
        assert read == int(8_009 * seconds)
        assert len(probabilities) == max(1, math.ceil(math.ceil(read * 16_000 / 8_009) / FRAME))
        assert (probabilities < 0.5).all()
