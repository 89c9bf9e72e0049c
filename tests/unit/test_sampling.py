"""The sampler on awkward numbers (issue 16 item 4): every temperature, top-p, top-k and repetition
penalty that SamplingParams accepts, on logits of any size, gives a valid token id; logits with
NaN or infinities are handled; a row with nothing usable gets NO_TOKEN and only that row."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from altlas.generation.sampling import (
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MAX_TOP_K,
    NO_TOKEN,
    SamplingParams,
    next_token,
    next_tokens,
)

VOCAB = 211
TEMPERATURES = [0.0, 5e-324, 1e-300, 1e-45, 1e-38, 1e-6, 0.3, 1.0, 2.0]  # 1e-45: a float32 subnormal
PENALTIES = [5e-324, 1e-300, 1e-6, 0.5, 1.0, 10.0]
TOP_P = [5e-324, 1e-12, 0.5, 1.0]
TOP_K = [0, 1, 7, VOCAB, 1_000_000]


def _logits(seed: int, scale: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Fresh random logits: a normal spread times `scale` (up to float32's range)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(VOCAB, generator=generator, dtype=torch.float64) * scale).to(dtype)


def _valid(token: int) -> bool:
    return 0 <= token < VOCAB


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4, 1e30, 3e38])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_every_temperature_and_penalty_gives_a_valid_token(scale: float, temperature: float) -> None:
    seen = torch.arange(0, VOCAB, 3)
    rows = list(itertools.product(PENALTIES, TOP_P, TOP_K, [None, 5]))
    for i, (penalty, top_p, top_k, seed) in enumerate(rows):
        params = SamplingParams(
            temperature=temperature, repetition_penalty=penalty, top_p=top_p, top_k=top_k, seed=seed
        )
        logits = _logits(i, scale)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        token = int(next_token(logits, params, seen, generator))
        assert _valid(token), (params, token)
    # the same settings as rows of one batch (greedy, shared sort, and one-at-a-time rows mixed)
    params = [SamplingParams(temperature=temperature, repetition_penalty=p, top_p=q, top_k=k, seed=s)
              for p, q, k, s in rows]  # fmt: skip
    logits = torch.stack([_logits(1000 + i, scale) for i in range(len(rows))])
    generators = [None if s is None else torch.Generator().manual_seed(s) for *_, s in rows]
    chosen = next_tokens(logits, params, [seen] * len(rows), generators)
    assert all(_valid(token) for token in chosen), chosen


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_temperature_zero_and_vanishing_temperatures_pick_the_best_token(dtype: torch.dtype) -> None:
    """Temperature 0 is argmax; one under MIN_DIVISOR samples as MIN_DIVISOR, which is argmax
    wherever the best logit leads the next by more than ~1e-4 (all these rows)."""
    for seed in range(20):
        logits = _logits(seed, 10.0, dtype)
        top2 = torch.topk(logits.float(), 2).values
        assert top2[0] - top2[1] > 1e-3  # a clear best
        best = int(logits.float().argmax())
        for temperature in (0.0, 5e-324, 1e-300, 1e-45):
            params = SamplingParams(temperature=temperature, top_p=1.0)
            assert int(next_token(logits, params, None, None)) == best
        batch = torch.stack([logits, logits])
        tiny = [SamplingParams(temperature=0.0), SamplingParams(temperature=1e-300)]
        assert next_tokens(batch, tiny, [None, None], [None, None]) == [best, best]
        # a top_p that is 0 in float32, or top_k 1, keeps the best token only, at any temperature
        for params in (
            SamplingParams(temperature=2.0, top_p=5e-324),
            SamplingParams(temperature=2.0, top_k=1),
        ):
            assert int(next_token(logits, params, None, None)) == best
            assert next_tokens(logits[None], [params], [None], [None]) == [best]


def test_a_vanishing_repetition_penalty_picks_among_the_repeated_tokens() -> None:
    """CTRL's rule divides a repeated token's positive logit by the penalty: by 1e-300 (0 in
    float32) that was +inf or NaN; now it is a very large finite score."""
    for seed in range(20):
        logits = _logits(seed, 5.0)
        seen = torch.tensor([3, 50, 51, 52, 200])
        favoured = {int(t) for t in seen if logits[t] > 0}
        if not favoured:
            continue
        for params in (SamplingParams(temperature=0.0, repetition_penalty=1e-300),
                       SamplingParams(temperature=1.0, repetition_penalty=5e-324, seed=seed)):  # fmt: skip
            generator = torch.Generator().manual_seed(seed)
            assert int(next_token(logits, params, seen, generator)) in favoured


def test_logits_with_nan_and_infinities() -> None:
    """NaN and -inf are never drawn while a row has another score, +inf always is; a row with
    no usable score gets NO_TOKEN, and the other rows of its batch are untouched."""
    nan, inf = float("nan"), float("inf")
    logits = torch.stack([_logits(seed, 3.0) for seed in range(7)])
    logits[0, ::2] = nan  # half NaN: one of the others
    logits[1, :] = nan  # nothing usable
    logits[2, :] = -inf  # nothing usable
    logits[3, 17] = inf  # a sure thing
    logits[4, :] = -inf
    logits[4, 40] = 0.0  # the only candidate
    logits[5, [8, 9]] = inf  # two sure things
    logits[6, :] = nan
    logits[6, 60] = -torch.finfo(torch.float32).max  # the only number, however low
    samplers = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=1.0),
        SamplingParams(temperature=0.7, seed=1),
        SamplingParams(temperature=1.0, repetition_penalty=1.3),
    ]
    for params in samplers:
        for _ in range(10):
            generator = torch.Generator().manual_seed(1) if params.seed is not None else None
            chosen = next_tokens(logits, [params] * 7, [torch.tensor([17, 40, 8])] * 7, [generator] * 7)
            assert chosen[0] % 2 == 1 and chosen[1:3] == [NO_TOKEN, NO_TOKEN], (params, chosen)
            assert chosen[3] == 17 and chosen[4] == 40 and chosen[5] in (8, 9) and chosen[6] == 60, chosen
            singles = [int(next_token(row, params, None, generator)) for row in logits]
            assert singles[1:3] == [NO_TOKEN, NO_TOKEN], singles
            assert singles[3] == 17 and singles[4] == 40 and singles[6] == 60, singles


def test_sampled_rows_follow_their_distribution() -> None:
    """The shift and clamps leave ordinary sampling alone: at temperature 1 over three tokens,
    the draws' frequencies match the softmax."""
    logits = torch.full((VOCAB,), float("-inf"))
    logits[[4, 9, 30]] = torch.tensor([2.0, 1.0, 0.0])
    want = torch.softmax(torch.tensor([2.0, 1.0, 0.0]), dim=0)
    torch.manual_seed(0)
    params = [SamplingParams(temperature=1.0)] * 4000
    draws = next_tokens(logits.expand(4000, VOCAB), params, [None] * 4000, [None] * 4000)
    counts = torch.tensor([draws.count(t) for t in (4, 9, 30)], dtype=torch.float64) / 4000
    torch.testing.assert_close(counts, want.double(), atol=0.03, rtol=0)


FLOAT32_MAX = torch.finfo(torch.float32).max
special = st.sampled_from([float("nan"), float("inf"), float("-inf"), FLOAT32_MAX, -FLOAT32_MAX, 0.0, 1e-45])
values = st.floats(allow_nan=False, allow_infinity=False, width=32) | special


@settings(max_examples=300, deadline=None)
@given(
    temperature=st.floats(0.0, MAX_TEMPERATURE),
    top_p=st.floats(0.0, 1.0, exclude_min=True),
    top_k=st.integers(0, MAX_TOP_K),
    penalty=st.floats(0.0, MAX_REPETITION_PENALTY, exclude_min=True),
    seed=st.none() | st.integers(0, 2**63 - 1),
    row=st.lists(values, min_size=1, max_size=40),
)
def test_any_accepted_parameters_on_any_logits(
    temperature: float, top_p: float, top_k: int, penalty: float, seed: int | None, row: list[float]
) -> None:
    """Whatever the API accepts, on whatever scores a model gives: a token of the row, and
    NO_TOKEN exactly when the row has no usable score."""
    params = SamplingParams(
        temperature=temperature, top_p=top_p, top_k=top_k, repetition_penalty=penalty, seed=seed
    )
    logits = torch.tensor(row, dtype=torch.float32)
    usable = bool((logits > float("-inf")).any())
    seen = torch.arange(0, len(row), 2)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    token = int(next_token(logits, params, seen, generator))
    batch = next_tokens(
        torch.stack([logits, logits]), [params, SamplingParams()], [seen, None], [generator, None]
    )
    for chosen in (token, batch[0]):
        if usable:
            assert 0 <= chosen < len(row) and logits[chosen] > float("-inf"), (chosen, row)
        else:
            assert chosen == NO_TOKEN
