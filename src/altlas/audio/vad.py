"""Voice-activity detection with Silero VAD: speech segments (start, end, probability) in audio.

The model (a small recurrent network, TorchScript, shipped by the `silero-vad` package) reads
16 kHz audio 512 samples (32 ms) at a time and carries a state from frame to frame. A long file
is cut into pieces of `chunk_seconds` that run side by side as one batch, so many pieces take as
many model steps as one, on the GPU or the CPU; each piece starts from a fresh state, which
costs a few frames of warm-up at its start. Audio is read as a stream of blocks, resampled as
it comes (audio/resample.py: resample_stream), and the pieces run side by side a group at a
time, a group holding at most `group_samples` 16 kHz samples (CPU: 32 MB; CUDA: 512 MB of device
memory); a piece longer than that runs alone, as its audio arrives. What is held does not grow
with the file's length, except the probabilities (4 bytes per 32 ms); since pieces start fresh,
the result is the same as running every piece side by side at once. Segments come from the per-frame
probabilities with hysteresis: speech starts at `threshold`, ends after `min_silence_ms` below
`threshold - 0.15`; shorter than `min_speech_ms` is dropped; each side is padded by `pad_ms`.

The package is located, not imported: importing it sets torch's CPU threads to 1 for the
whole process.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from altlas.audio.resample import resample_stream
from altlas.errors import InvalidInputError

__all__ = ["SpeechSegment", "VoiceActivityDetector", "default_vad_path"]

SAMPLE_RATE = 16_000
FRAME = 512  # samples per model step at 16 kHz
GROUP_SAMPLES_CPU = 1 << 23  # 16 kHz samples run side by side at once: 32 MB, 8.7 minutes
GROUP_SAMPLES_DEVICE = 1 << 27  # on an accelerator (its memory, not the host's): 2.3 hours


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
        self, path: Path | None = None, device: torch.device | None = None, chunk_seconds: float = 30.0,
        group_samples: int | None = None,
    ) -> None:  # fmt: skip
        """group_samples: 16 kHz samples of pieces run side by side at once (default: by device)."""
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
        if group_samples is None:
            group_samples = GROUP_SAMPLES_CPU if self.device.type == "cpu" else GROUP_SAMPLES_DEVICE
        self.group_samples = group_samples

    def probabilities(self, samples: np.ndarray | torch.Tensor, rate: int) -> np.ndarray:
        """Speech probability of every 32 ms frame, resampled to 16 kHz on the model's device."""
        return self.stream_probabilities([samples], rate)[0]

    def stream_probabilities(
        self, blocks: Iterable[np.ndarray | torch.Tensor], rate: int
    ) -> tuple[np.ndarray, int]:
        """(speech probability of every 32 ms frame, samples read) of the audio that `blocks`
        (1-D, at `rate` Hz) hold in order, read one block at a time."""
        read = [0]
        audio = resample_stream(self._on_device(blocks, read), rate, SAMPLE_RATE)
        piece = self.chunk_frames * FRAME
        probabilities = self._alone(audio) if self.group_samples < 2 * piece else self._grouped(audio)
        return probabilities, read[0]

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
        return self.stream_segments(
            [samples], rate, threshold=threshold, min_speech_ms=min_speech_ms,
            min_silence_ms=min_silence_ms, pad_ms=pad_ms,
        )  # fmt: skip

    def stream_segments(
        self,
        blocks: Iterable[np.ndarray | torch.Tensor],
        rate: int,
        *,
        threshold: float = 0.5,
        min_speech_ms: float = 250,
        min_silence_ms: float = 100,
        pad_ms: float = 30,
    ) -> tuple[list[SpeechSegment], float]:
        """(speech segments, audio duration in seconds) of the audio `blocks` hold in order."""
        if not 0.0 < threshold < 1.0:
            raise InvalidInputError(f"must be between 0 and 1, got {threshold}", field="threshold")
        probabilities, read = self.stream_probabilities(blocks, rate)
        duration = read / rate
        return speech_segments(
            probabilities, duration, threshold, min_speech_ms, min_silence_ms, pad_ms
        ), duration

    def _on_device(
        self, blocks: Iterable[np.ndarray | torch.Tensor], read: list[int]
    ) -> Iterator[torch.Tensor]:
        for block in blocks:
            audio = torch.as_tensor(block, dtype=torch.float32).reshape(-1)
            read[0] += audio.numel()
            yield audio.to(self.device)

    def _grouped(self, audio: Iterable[torch.Tensor]) -> np.ndarray:
        """The pieces side by side, as many at a time as `group_samples` holds."""
        piece = self.chunk_frames * FRAME
        group = torch.zeros(self.group_samples // piece * piece, device=self.device)
        filled, out = 0, []
        for block in audio:
            while block.numel():
                take = min(block.numel(), group.numel() - filled)
                group[filled : filled + take] = block[:take]
                block, filled = block[take:], filled + take
                if filled == group.numel():
                    out.append(self._side_by_side(group, filled))
                    filled = 0
        if filled or not out:
            group[filled:] = 0
            out.append(self._side_by_side(group, filled))
        return np.concatenate(out)

    def _side_by_side(self, audio: torch.Tensor, samples: int) -> np.ndarray:
        """Probabilities of the first `samples` of `audio` (zeros after them), its pieces as one batch."""
        frames = max(1, math.ceil(samples / FRAME))
        pieces = math.ceil(frames / self.chunk_frames)
        steps = min(frames, self.chunk_frames)
        batch = audio[: pieces * steps * FRAME].view(pieces, steps, FRAME)
        out = torch.empty(pieces, steps, device=self.device)
        with torch.inference_mode():
            self.model.reset_states()
            for step in range(steps):
                out[:, step] = self.model(batch[:, step], SAMPLE_RATE)[:, 0]
        return out.reshape(-1)[:frames].float().cpu().numpy()

    def _alone(self, audio: Iterable[torch.Tensor]) -> np.ndarray:
        """Pieces one after the other, each frame as it arrives, the state carried within a piece."""
        out: list[np.ndarray] = []
        rest = torch.zeros(0, device=self.device)
        step = 0
        with torch.inference_mode():
            for block in audio:
                rest = torch.cat([rest, block])
                whole = rest.numel() // FRAME * FRAME
                step = self._frames_alone(rest[:whole].view(-1, FRAME), step, out)
                rest = rest[whole:]
            if rest.numel() or not step:  # the last frame, zeros after the end
                self._frames_alone(torch.cat([rest, rest.new_zeros(FRAME - rest.numel())])[None], step, out)
        return np.concatenate(out)

    def _frames_alone(self, frames: torch.Tensor, step: int, out: list[np.ndarray]) -> int:
        """[n, FRAME] frames from frame `step` of the file on: their probabilities go to `out`."""
        probabilities = torch.empty(len(frames), device=self.device)
        for i, frame in enumerate(frames):
            if (step + i) % self.chunk_frames == 0:  # a piece starts fresh
                self.model.reset_states()
            probabilities[i] = self.model(frame[None], SAMPLE_RATE)[0, 0]
        out.append(probabilities.cpu().numpy())
        return step + len(frames)

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
