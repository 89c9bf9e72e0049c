"""Voice-activity detection with Silero VAD: speech segments (start, end, probability) in audio.

The model (a small recurrent network, TorchScript, shipped by the `silero-vad` package) reads
16 kHz audio 512 samples (32 ms) at a time and carries a state from frame to frame. A long file
is cut into pieces of `chunk_seconds` that run side by side as one batch, so an hour of audio
takes as many model steps as one piece, on the GPU or the CPU; each piece starts from a fresh
state, which costs a few frames of warm-up at its start. Segments come from the per-frame
probabilities with hysteresis: speech starts at `threshold`, ends after `min_silence_ms` below
`threshold - 0.15`; shorter than `min_speech_ms` is dropped; each side is padded by `pad_ms`.

The package is located, not imported: importing it sets torch's CPU threads to 1 for the
whole process.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from altlas.audio.resample import resample
from altlas.errors import InvalidInputError

__all__ = ["SpeechSegment", "VoiceActivityDetector", "default_vad_path"]

SAMPLE_RATE = 16_000
FRAME = 512  # samples per model step at 16 kHz


@dataclass(frozen=True)
class SpeechSegment:
    start: float  # seconds
    end: float
    probability: float  # mean speech probability over the segment's frames


def default_vad_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInputError(
            "the silero-vad package is not installed (pip install silero-vad)", field="source"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"


class VoiceActivityDetector:
    def __init__(
        self, path: Path | None = None, device: torch.device | None = None, chunk_seconds: float = 30.0
    ) -> None:
        self.path = path or default_vad_path()
        if self.path.is_dir():
            self.path = self.path / "silero_vad.jit"
        self.device = device or torch.device("cpu")
        try:
            with (
                warnings.catch_warnings()
            ):  # torch 2.11+ calls TorchScript deprecated; this model ships as one
                warnings.simplefilter("ignore", DeprecationWarning)
                self.model = torch.jit.load(str(self.path), map_location=self.device).eval()  # type: ignore[no-untyped-call]
        except (RuntimeError, ValueError) as exc:
            raise InvalidInputError(
                f"{self.path.name} is not a TorchScript VAD model: {exc}", field="source"
            ) from None
        self.chunk_frames = max(1, int(chunk_seconds * SAMPLE_RATE / FRAME))

    def probabilities(self, samples: np.ndarray | torch.Tensor, rate: int) -> np.ndarray:
        """Speech probability of every 32 ms frame, resampled to 16 kHz on the model's device."""
        audio = torch.as_tensor(samples, dtype=torch.float32).to(self.device)
        audio = resample(audio, rate, SAMPLE_RATE)
        frames = max(1, math.ceil(audio.numel() / FRAME))
        pieces = math.ceil(frames / self.chunk_frames)
        steps = min(frames, self.chunk_frames)
        padded = torch.zeros(pieces * steps * FRAME, device=self.device)
        padded[: audio.numel()] = audio
        batch = padded.view(pieces, steps, FRAME)
        out = torch.empty(pieces, steps, device=self.device)
        with torch.inference_mode():
            self.model.reset_states()
            for step in range(steps):
                out[:, step] = self.model(batch[:, step], SAMPLE_RATE)[:, 0]
        return out.reshape(-1)[:frames].float().cpu().numpy()

    def segments(
        self,
        samples: np.ndarray | torch.Tensor,
        rate: int,
        *,
        threshold: float = 0.5,
        min_speech_ms: float = 250,
        min_silence_ms: float = 100,
        pad_ms: float = 30,
    ) -> tuple[list[SpeechSegment], float]:
        """(speech segments, audio duration in seconds)."""
        if not 0.0 < threshold < 1.0:
            raise InvalidInputError(f"must be between 0 and 1, got {threshold}", field="threshold")
        duration = len(samples) / rate
        probabilities = self.probabilities(samples, rate)
        return speech_segments(
            probabilities, duration, threshold, min_speech_ms, min_silence_ms, pad_ms
        ), duration

    def warmup(self) -> None:
        self.probabilities(np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
        self.probabilities(np.zeros(SAMPLE_RATE * 3, dtype=np.float32), 22_050)


def speech_segments(
    probabilities: np.ndarray, duration: float, threshold: float, min_speech_ms: float,
    min_silence_ms: float, pad_ms: float,
) -> list[SpeechSegment]:  # fmt: skip
    frame_s = FRAME / SAMPLE_RATE
    low = max(threshold - 0.15, 0.01)
    silence_frames = max(1, math.ceil(min_silence_ms / 1000 / frame_s))
    spans: list[tuple[int, int]] = []
    start: int | None = None
    quiet_from: int | None = None
    for i, p in enumerate(probabilities):
        if p >= threshold:
            start = i if start is None else start
            quiet_from = None
        elif start is not None and p < low:
            quiet_from = i if quiet_from is None else quiet_from
            if i - quiet_from + 1 >= silence_frames:
                spans.append((start, quiet_from))
                start, quiet_from = None, None
    if start is not None:
        spans.append((start, quiet_from if quiet_from is not None else len(probabilities)))
    segments: list[SpeechSegment] = []
    pad = pad_ms / 1000
    for first, end in spans:
        if (end - first) * frame_s * 1000 < min_speech_ms:
            continue
        begin_s, end_s = max(0.0, first * frame_s - pad), min(duration, end * frame_s + pad)
        probability = float(np.mean(probabilities[first:end]))
        if segments and begin_s <= segments[-1].end:  # padding made them touch: one segment
            last = segments.pop()
            begin_s, probability = last.start, (last.probability + probability) / 2
        segments.append(SpeechSegment(round(begin_s, 3), round(end_s, 3), round(probability, 4)))
    return segments
