"""Band-limited resampling on any device: a windowed-sinc polyphase filter as one strided convolution.

For a rational ratio new/old = up/down (reduced by their gcd), output sample j lies at input
time j*down/up; its value is a sum of input samples weighted by a Hann-windowed sinc with its
cut-off at the lower of the two Nyquist frequencies (no aliasing when going down). Output
samples come in `up` phases that each reuse one filter, so the whole job is a conv1d with
`up` output channels and stride `down`, which runs on the GPU as readily as on the CPU.
"""

from __future__ import annotations

import math

import torch

__all__ = ["resample"]


def resample(samples: torch.Tensor, rate: int, new_rate: int, *, zeros: int = 16) -> torch.Tensor:
    """`samples` [..., time] from `rate` to `new_rate` Hz; `zeros`: sinc zero crossings per side."""
    if rate == new_rate:
        return samples
    if rate <= 0 or new_rate <= 0:
        raise ValueError("sample rates must be positive")
    divisor = math.gcd(rate, new_rate)
    up, down = new_rate // divisor, rate // divisor
    cutoff = min(up, down) * 0.99  # a hair under Nyquist, for the window's transition band
    width = math.ceil(zeros * down / cutoff)  # taps each side, in input samples
    dtype = torch.float64 if samples.dtype == torch.float64 else torch.float32
    phases = torch.arange(up, device=samples.device, dtype=torch.float64)[:, None] * down / up
    taps = torch.arange(-width, width + down, device=samples.device, dtype=torch.float64)[None, :]
    t = (taps - phases) * cutoff / down  # in units of the cut-off period
    window = torch.where(t.abs() <= zeros, torch.cos(t * math.pi / zeros / 2) ** 2, 0.0)
    kernel = torch.sinc(t) * window * cutoff / down
    shape = samples.shape
    flat = samples.reshape(-1, 1, shape[-1]).to(dtype)
    padded = torch.nn.functional.pad(flat, (width, width + down))
    out = torch.nn.functional.conv1d(padded, kernel.to(dtype)[:, None, :], stride=down)  # [n, up, frames]
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    length = math.ceil(shape[-1] * up / down)
    return out[:, :length].reshape(*shape[:-1], length).to(samples.dtype)
