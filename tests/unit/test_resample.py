"""Resampling at any rate: exact output length, accuracy against analytic sines and a plain
float64 reference, no aliasing going down, and work bounded by the samples whatever the ratio;
a stream of blocks resampled equals the whole signal resampled, in memory that does not grow
with the stream's length."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from altlas.audio.resample import _BUDGET, ResamplingPlan, resample, resample_stream

ODD = [8_009, 1_000, 1_001, 11_111, 22_051, 44_101, 383_999, 384_000]
COMMON = [8_000, 11_025, 22_050, 44_100, 48_000, 96_000]


def reference(x: np.ndarray, rate: int, new_rate: int, zeros: int = 16) -> np.ndarray:
    """The windowed-sinc sum written out in float64, one output at a time, positions exact."""
    cutoff = min(1.0, new_rate / rate) * 0.99
    reach = zeros / cutoff  # input samples each side where the window is not zero
    out = np.zeros(math.ceil(len(x) * new_rate / rate))
    for j in range(len(out)):
        position = Fraction(j * rate, new_rate)
        first = max(0, math.ceil(position - reach))
        taps = np.arange(first, min(len(x), math.floor(position + reach) + 1))
        t = (taps - float(position)) * cutoff
        window = np.where(np.abs(t) <= zeros, np.cos(t * np.pi / zeros / 2) ** 2, 0.0)
        out[j] = np.sum(x[taps] * np.sinc(t) * window * cutoff)
    return out


@pytest.mark.parametrize("rate", ODD + COMMON)
@pytest.mark.parametrize("n", [1, 2, 37, 1_000])
def test_the_output_has_ceil_n_times_the_ratio_samples(rate: int, n: int) -> None:
    out = resample(torch.randn(n), rate, 16_000)
    assert out.shape == (math.ceil(n * 16_000 / rate),) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("rate", "new_rate"), [(8_009, 16_000), (44_101, 16_000), (1_000, 16_000),
                                                (44_100, 16_000), (16_000, 44_100), (3, 7)])  # fmt: skip
def test_every_output_is_the_windowed_sinc_sum_at_its_exact_time(rate: int, new_rate: int) -> None:
    rng = np.random.default_rng(rate)
    x = rng.standard_normal((2, 3, 400))  # any leading shape
    got = resample(torch.from_numpy(x), rate, new_rate)
    assert got.dtype == torch.float64 and got.shape == (2, 3, math.ceil(400 * new_rate / rate))
    for row, expected in zip(got.reshape(6, -1).numpy(), x.reshape(6, -1), strict=True):
        np.testing.assert_allclose(row, reference(expected, rate, new_rate), atol=1e-10)
    single = resample(torch.from_numpy(x).float(), rate, new_rate)
    np.testing.assert_allclose(single.numpy(), got.numpy(), atol=2e-5)


@pytest.mark.parametrize(
    ("rate", "hz"),
    [(rate, hz) for rate in (8_009, 11_111, 22_051, 44_101, 100_003, 383_999, 8_000, 44_100)
     for hz in (440.0, 3_000.0, 6_000.0) if hz <= 0.375 * min(rate, 16_000)],  # in both passbands
)  # fmt: skip
def test_a_sine_at_an_odd_rate_comes_out_as_the_same_sine_at_16_khz(rate: int, hz: float) -> None:
    seconds = 0.5
    x = np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)
    out = resample(torch.from_numpy(x).float(), rate, 16_000).numpy()
    expected = np.sin(2 * np.pi * hz * np.arange(len(out)) / 16_000)
    edge = int(0.01 * 16_000)  # the filter reaches 1 ms at most (16 zeros at 8 kHz x 0.99 is 2 ms: 10 ms)
    error = np.abs(out[edge:-edge] - expected[edge:-edge]).max()
    assert error < 2e-3, error  # no drift however odd the ratio: the filter's ripple (44,100 Hz: 7e-4)


@pytest.mark.parametrize("rate", [44_101, 383_999, 48_000])
@pytest.mark.parametrize(("hz", "most"), [(9_500.0, 2e-3), (12_000.0, 1e-4)])
def test_going_down_filters_out_what_16_khz_cannot_hold(rate: int, hz: float, most: float) -> None:
    x = np.sin(2 * np.pi * hz * np.arange(rate // 2) / rate)  # above 8 kHz: would alias to 16 kHz - hz
    out = resample(torch.from_numpy(x).float(), rate, 16_000).numpy()
    assert np.sqrt(np.mean(out[200:-200] ** 2)) < most  # the sine's own RMS is 0.71


@pytest.mark.parametrize("rate", [8_009, 44_101, 383_999, 2**31 - 1, 1])
def test_the_plan_is_bounded_whatever_the_ratio(rate: int) -> None:
    for samples in (1, 244, 10 * 60 * 48_000):
        plan = ResamplingPlan(rate, 16_000, samples)
        assert 1 <= plan.width <= min(samples, math.ceil(16 / plan.cutoff))
        assert plan.block * 2 * plan.width <= max(_BUDGET, 2 * plan.width)  # weights computed at once
        assert plan.length == math.ceil(samples * 16_000 / rate)


def test_rates_that_are_not_positive_are_refused() -> None:
    for rate, new_rate in [(0, 16_000), (16_000, 0), (-8_000, 16_000)]:
        with pytest.raises(ValueError, match="positive"):
            resample(torch.zeros(10), rate, new_rate)


def test_empty_input_gives_empty_output() -> None:
    assert resample(torch.zeros(3, 0), 8_009, 16_000).shape == (3, 0)


_CHILD = """
import json, resource, sys, torch
from altlas.audio.resample import resample
torch.set_num_threads(1)
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
x = torch.randn(int(rate * seconds))
resample(x[:1000], 44_100, 16_000)  # torch's own first-use allocations are not the resampler's
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = resample(x, rate, 16_000)
print(json.dumps({"growth": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024,
                  "samples": x.numel(), "length": out.numel()}))
"""


@pytest.mark.parametrize(("rate", "seconds"), [(8_009, 30.0), (383_999, 5.0), (2**31 - 1, 0.0001)])
def test_memory_follows_the_samples_not_the_ratio(rate: int, seconds: float) -> None:
    """A fresh process, so that its peak is this resampling's: input and output in float32, the
    padded copy, and at most a few blocks of working memory (once: 3.9 GB at 8,009 Hz)."""
    run = subprocess.run([sys.executable, "-c", _CHILD, str(rate), str(seconds)],
                         capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    report = json.loads(run.stdout)
    assert report["length"] == math.ceil(report["samples"] * 16_000 / rate)
    data_bytes = 4 * (2 * report["samples"] + report["length"])
    assert report["growth"] < data_bytes + 64 * 2**20, report


@pytest.mark.parametrize("rate", [*ODD, 8_000, 44_100, 48_000, 16_000])
@pytest.mark.parametrize(("n", "block", "steps"), [(1, 1, 1), (20, 3, 1), (40_000, 777, 1), (None, 777, 4)])
def test_a_stream_of_blocks_resampled_equals_the_whole_signal_resampled(
    rate: int, n: int | None, block: int, steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step emits whole groups of `up` outputs, whose taps begin at an input sample, and
    carries the filter's context to the next: the same taps at the same exact times as the whole
    signal's (the last step pads the zeros past the end, as `resample` does)."""
    if n is None:  # output or input samples a step: few, so that `steps` steps are taken
        step = 1 << 12
        monkeypatch.setattr(sys.modules["altlas.audio.resample"], "_STREAM_SAMPLES", step)  # the module
        plan = ResamplingPlan(rate, 16_000, 1 << 62)  # a stream's filter: a long signal's
        per_step = max(1, step // max(plan.up, plan.down)) * plan.down  # input samples a step takes
        n = (steps - 1) * per_step + 2 * plan.width + per_step // 2  # the last step: what is left
    x = torch.randn(n, generator=torch.Generator().manual_seed(rate + n))
    pieces = list(resample_stream(iter([x[i : i + block] for i in range(0, n, block)]), rate, 16_000))
    whole = resample(x, rate, 16_000)
    streamed = torch.cat(pieces)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=0)  # the same taps; float32 sums
    if rate != 16_000 and steps > 1:
        assert len(pieces) == steps, len(pieces)


def test_an_empty_stream_gives_nothing() -> None:
    assert list(resample_stream(iter([]), 8_009, 16_000)) == []
    assert list(resample_stream(iter([torch.zeros(0)]), 8_009, 16_000)) == []


_STREAM_CHILD = """
import json, resource, sys, torch
from altlas.audio.resample import resample_stream
torch.set_num_threads(1)
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
block = torch.randn(1 << 16)
def blocks():
    for _ in range(int(rate * seconds) >> 16):
        yield block
sum(out.numel() for out in resample_stream(iter([block[:1000]]), rate, 16_000))  # torch's first use
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
length = sum(out.numel() for out in resample_stream(blocks(), rate, 16_000))
print(json.dumps({"growth": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024,
                  "length": length}))
"""


@pytest.mark.parametrize(("rate", "seconds"), [(8_009, 1_800.0), (383_999, 100.0), (1_000, 3_600.0)])
def test_a_stream_is_resampled_in_memory_that_does_not_grow_with_its_length(
    rate: int, seconds: float
) -> None:
    """A fresh process: 30 minutes at 8,009 Hz (57.6 M samples out, 230 MB in float32) and 100 s
    at 383,999 Hz (38 M in) hold a step's input and output (2^22 samples each, 16 MB) and the
    filter's weights, not the signal."""
    run = subprocess.run([sys.executable, "-c", _STREAM_CHILD, str(rate), str(seconds)],
                         capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    report = json.loads(run.stdout)
    assert report["length"] == math.ceil((int(rate * seconds) >> 16 << 16) * 16_000 / rate)
    assert report["growth"] < 128 * 2**20, report
