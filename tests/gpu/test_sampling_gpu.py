"""Issue 16 item 4 on CUDA, where the sampler runs in production: extreme sampling values and
broken logits give valid tokens (or NO_TOKEN for a row with nothing usable), and in continuous
batching with the Triton kernels and CUDA graphs a failing generation fails alone."""

from __future__ import annotations

import itertools

import pytest
import torch

from altlas.generation.sampling import NO_TOKEN, SamplingParams, next_token, next_tokens

from ..unit.test_continuous_isolation import check_isolation

pytestmark = pytest.mark.gpu

VOCAB = 49_152  # SmolLM2's


def test_extreme_values_and_broken_logits_give_valid_tokens_on_cuda() -> None:
    temperatures = [0.0, 5e-324, 1e-300, 1e-45, 1e-6, 1.0, 2.0]
    rows = list(
        itertools.product(
            temperatures, [5e-324, 1e-300, 1.0, 10.0], [5e-324, 0.5, 1.0], [0, 1, 50], [None, 7]
        )
    )
    params = [
        SamplingParams(temperature=t, repetition_penalty=p, top_p=q, top_k=k, seed=s)
        for t, p, q, k, s in rows
    ]
    generator = torch.Generator(device="cuda").manual_seed(0)
    logits = (torch.randn(len(rows), VOCAB, device="cuda", generator=generator) * 30).to(torch.bfloat16)
    logits[::5, ::3] = float("nan")
    logits[2::11, 100] = float("inf")
    logits[1::7] = float("-inf")  # nothing usable in these rows
    usable = (logits.float() > float("-inf")).any(dim=-1).tolist()
    seen = torch.arange(0, VOCAB, 97, device="cuda")
    generators = [None if s is None else torch.Generator(device="cuda").manual_seed(s) for *_, s in rows]
    chosen = next_tokens(logits, params, [seen] * len(rows), generators)
    for r, token in enumerate(chosen):
        if not usable[r]:
            assert token == NO_TOKEN, (rows[r], token)
            continue
        assert 0 <= token < VOCAB and not torch.isnan(logits[r, token]), (rows[r], token)
        alone = int(next_token(logits[r], params[r], seen, generators[r]))
        assert 0 <= alone < VOCAB and not torch.isnan(logits[r, alone]), (rows[r], alone)


def test_vanishing_temperatures_are_greedy_on_cuda() -> None:
    generator = torch.Generator(device="cuda").manual_seed(1)
    logits = torch.randn(64, VOCAB, device="cuda", generator=generator) * 10
    top2 = torch.topk(logits, 2, dim=-1).values
    clear = ((top2[:, 0] - top2[:, 1]) > 1e-3).tolist()
    best = logits.argmax(dim=-1).tolist()
    for temperature in (0.0, 5e-324, 1e-300, 1e-45):
        params = [SamplingParams(temperature=temperature)] * 64
        chosen = next_tokens(logits, params, [None] * 64, [None] * 64)
        assert [c for c, ok in zip(chosen, clear, strict=True) if ok] == [
            b for b, ok in zip(best, clear, strict=True) if ok
        ]


@pytest.mark.parametrize("fault", ["nan", "raise"])
def test_one_failing_generation_leaves_the_others_running_on_cuda(fault: str) -> None:
    check_isolation(fault, torch.device("cuda"))
