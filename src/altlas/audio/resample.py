"""Band-limited resampling on any device: a Hann-windowed sinc at each output sample, in phases.

Output sample j lies at input time j * down / up, where up / down = new_rate / rate in lowest
terms; its value is a sum of the 2 * width input samples around that time, weighted by a
Hann-windowed sinc with `zeros` zero crossings each side and its cut-off a hair under the lower
of the two Nyquist frequencies (no aliasing when going down). Outputs j = m * up + p share phase
p, hence one row of weights, and their input windows start `down` samples apart: each phase is a
matrix-vector product over a strided view of the input, taken in blocks. Times are exact
integers however odd the rates (no drift), and the work is bounded by the samples, not the
ratio: 2 * width multiply-adds per output, the weights of `_BUDGET` taps at a time, and the
windows of one block (`_BUDGET` taps) copied at most. Python steps: one per phase that has
outputs (at most `up`, 16,000 for 8,009 -> 16,000 Hz) and one per block.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

__all__ = ["ResamplingPlan", "resample", "resample_stream"]

_BUDGET = 1 << 20  # taps (elements) of weights computed at once, and of input windows per product
_STREAM_SAMPLES = 1 << 22  # input or output samples per step of resample_stream (16 MB in float32)
_UNBOUNDED = 1 << 62  # a stream's length is not known: its filter is a long signal's


@dataclass(frozen=True)
class ResamplingPlan:
    """How `resample` takes `samples` input samples from `rate` to `new_rate` Hz."""

    rate: int
    new_rate: int
    samples: int
    zeros: int = 16  # sinc zero crossings each side

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.new_rate <= 0:
            raise ValueError("sample rates must be positive")

    @property
    def up(self) -> int:
        """Output phases: new_rate / gcd(rate, new_rate)."""
        return self.new_rate // math.gcd(self.rate, self.new_rate)

    @property
    def down(self) -> int:
        """Input samples between the windows of outputs up apart: rate / gcd(rate, new_rate)."""
        return self.rate // math.gcd(self.rate, self.new_rate)

    @property
    def cutoff(self) -> float:
        """The low-pass filter's cut-off in cycles per input sample x 2 (1.0: the input's Nyquist)."""
        return min(1.0, self.new_rate / self.rate) * 0.99

    @property
    def width(self) -> int:
        """Taps each side of an output; past the input's ends they would only see zeros."""
        return max(1, min(math.ceil(self.zeros / self.cutoff), self.samples))

    @property
    def length(self) -> int:
        """Output samples."""
        return math.ceil(self.samples * self.new_rate / self.rate)

    @property
    def block(self) -> int:
        """Phases whose weights are computed at once, and outputs of one phase per product."""
        return max(1, _BUDGET // (2 * self.width))

    def weights(self, phases: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[phases] -> [phases, 2 * width]: the weights of taps base - width + 1 ... base + width
        for an output at input time base + (phase * down mod up) / up."""
        frac = (phases * self.down % self.up).to(torch.float64) / self.up
        offsets = torch.arange(-self.width + 1, self.width + 1, device=phases.device, dtype=torch.float64)
        t = (offsets - frac[:, None]) * self.cutoff  # each tap's distance from the output, in cut-off periods
        window = torch.where(t.abs() <= self.zeros, torch.cos(t * (math.pi / self.zeros / 2)) ** 2, 0.0)
        return (torch.sinc(t) * window * self.cutoff).to(dtype)


def resample(samples: torch.Tensor, rate: int, new_rate: int, *, zeros: int = 16) -> torch.Tensor:
    """`samples` [..., time] from `rate` to `new_rate` Hz; `zeros`: sinc zero crossings per side."""
    if rate == new_rate:
        return samples
    shape = samples.shape
    plan = ResamplingPlan(rate, new_rate, shape[-1], zeros)
    if samples.numel() == 0:
        return samples.new_zeros(*shape[:-1], plan.length)
    dtype = torch.float64 if samples.dtype == torch.float64 else torch.float32
    flat = samples.reshape(-1, shape[-1]).to(dtype)
    # padded[r, s] = flat[r, s - width] (zeros past the ends): output j's taps start at base_j + 1
    padded = torch.nn.functional.pad(flat, (plan.width, plan.width)).contiguous()
    out = _outputs(plan, padded, plan.length)
    return out.reshape(*shape[:-1], plan.length).to(samples.dtype)


def resample_stream(
    blocks: Iterable[torch.Tensor], rate: int, new_rate: int, *, zeros: int = 16
) -> Iterator[torch.Tensor]:
    """`resample` of the concatenation of `blocks` (1-D, any sizes), as blocks: their
    concatenation equals resampling the whole signal (the same taps at the same exact times),
    while only what one step needs is held (`_STREAM_SAMPLES` samples in or out plus the
    filter's context, not the signal). Each step emits a whole number of `up` outputs, which start on
    an input sample, so the next step's phases are the whole signal's phases."""
    if rate == new_rate:
        yield from blocks
        return
    plan = ResamplingPlan(rate, new_rate, _UNBOUNDED, zeros)  # the filter of a long signal
    groups = max(1, _STREAM_SAMPLES // max(plan.down, plan.up))  # of `up` outputs per step
    need = groups * plan.down + 2 * plan.width  # held samples that make `groups` groups' taps
    held: torch.Tensor | None = None  # input from `first` - width on (zeros before the start)
    waiting: list[torch.Tensor] = []  # blocks not yet joined to `held`
    count = first = seen = 0  # samples in `waiting`; input index of the next group's time; read
    for block in blocks:
        if held is None:
            held = block.new_zeros(plan.width)
        waiting.append(block.reshape(-1))
        count, seen = count + block.numel(), seen + block.numel()
        if held.numel() + count < need:
            continue
        held, waiting, count = torch.cat([held, *waiting]), [], 0
        while held.numel() >= need:
            yield _outputs(plan, held[None], groups * plan.up)[0]
            held, first = held[groups * plan.down :], first + groups * plan.down
    if held is None or seen == 0:
        return
    length = ResamplingPlan(rate, new_rate, seen, zeros).length - first // plan.down * plan.up
    if length > 0:  # the zeros past the end, as `resample` pads them
        yield _outputs(plan, torch.cat([held, *waiting, held.new_zeros(plan.width)])[None], length)[0]


def _outputs(plan: ResamplingPlan, padded: torch.Tensor, length: int) -> torch.Tensor:
    """[rows, length]: outputs 0 ... length - 1 of each row of `padded`, whose output j takes
    taps floor(j * down / up) + 1 ... + 2 * width."""
    out = torch.zeros(  # [rows, m, phase]: output m * up + phase
        padded.shape[0], math.ceil(length / plan.up), plan.up, device=padded.device, dtype=padded.dtype
    )
    for first in range(0, min(plan.up, length), plan.block):
        phases = torch.arange(first, min(first + plan.block, plan.up, length), device=padded.device)
        for phase, weights in enumerate(plan.weights(phases, padded.dtype), start=first):
            _one_phase(plan, padded, weights, phase, length, out[:, :, phase])
    return out.reshape(padded.shape[0], -1)[:, :length]


def _one_phase(
    plan: ResamplingPlan, padded: torch.Tensor, weights: torch.Tensor, phase: int, length: int,
    out: torch.Tensor,
) -> None:  # fmt: skip
    """out[:, m] = output m * up + phase of each row, `plan.block` taps' worth at a time."""
    rows, taps = padded.shape[0], 2 * plan.width
    base = padded.storage_offset()  # as_strided counts from the storage's start, not the view's
    start = phase * plan.down // plan.up + 1  # of output m * up + phase: start + m * down
    count = math.ceil((length - phase) / plan.up)
    step = max(1, plan.block // rows)
    for m in range(0, count, step):
        size = min(step, count - m)
        windows = padded.as_strided(  # overlapping views: the product copies at most this block
            (rows, size, taps), (padded.stride(0), plan.down, 1), base + start + m * plan.down
        )
        out[:, m : m + size] = torch.matmul(windows, weights)
