"""Continuous batching: a generation that fails fails alone (issue 16 item 4).

The batcher is driven directly over the real paged decoder of a small random Llama. Three
greedy generations are decoding when a fourth joins whose own work fails: its logits come
out NaN (the model failing for one sequence), the launch that carries its rows raises, or its
sampling raises (a parameter past the checks). The fourth ends with an error; the three give
the very tokens they give without it, and the batcher serves on with every page back."""

from __future__ import annotations

import math
from collections.abc import Generator

import pytest
import torch

from altlas.generation.continuous import ContinuousBatcher, SequenceStream
from altlas.generation.paged_decoder import PagedLlamaDecoder
from altlas.generation.sampling import SamplingParams

from .test_llama_decoder import tiny_llama

transformers = pytest.importorskip("transformers")

POISON, AT = 90, 4  # the faulty sequence's prompt ends with token 90 at position 4
BAD_PROMPT = [11, 12, 13, 14, POISON]
HEALTHY = [[(7 * i + 3 * k) % 97 for i in range(14 + 11 * k)] for k in range(3)]  # none has 90 at 4
BUDGET = 150  # the healthy ones are still decoding when the faulty one arrives
GREEDY = SamplingParams(max_tokens=BUDGET, temperature=0.0)


class FaultyDecoder(PagedLlamaDecoder):
    """The paged decoder, with a fault in the rows that feed POISON at position AT: "nan" gives
    them NaN logits, "raise" fails the launch after it ran (the other rows' keys and values are
    written by then); "none" is the decoder as it is."""

    fault = "none"

    def step(self, rows: int) -> torch.Tensor:
        logits = super().step(rows)
        poisoned = (self.tokens[:rows] == POISON) & (self.positions[:rows] == AT)
        if self.fault != "none" and bool(poisoned.any()):
            if self.fault == "raise":
                raise RuntimeError("injected: the launch failed")
            logits = logits.clone()
            logits[:rows][poisoned] = math.nan
        return logits


def _batcher(fault: str, device: torch.device) -> ContinuousBatcher:
    model = tiny_llama(2, seed=3).to(device)  # type: ignore[attr-defined]
    decoder = FaultyDecoder(model, max_context=200, slots=4, cache_tokens=800, page=8)
    decoder.fault = fault
    return ContinuousBatcher("tiny", decoder, eos_ids=frozenset(), pace_ms=0.0)


def _drain(chunks: Generator[list[int], None, str], first: list[int]) -> tuple[list[int], str]:
    tokens = list(first)
    while True:
        try:
            tokens.extend(next(chunks))
        except StopIteration as end:
            return tokens, end.value


def _healthy_answers(batcher: ContinuousBatcher, bad: SamplingParams | None) -> list[list[int]]:
    """The three healthy generations' tokens; with `bad`, a fourth (BAD_PROMPT) joins once all
    three are decoding, and must fail."""
    streams = [batcher.submit(prompt, GREEDY, BUDGET) for prompt in HEALTHY]
    readers = [stream.tokens(timeout_s=120) for stream in streams]
    firsts = [next(reader) for reader in readers]  # all three are decoding now
    failing: SequenceStream | None = None
    if bad is not None:
        failing = batcher.submit(BAD_PROMPT, bad, 20)
    answers = []
    for reader, first in zip(readers, firsts, strict=True):
        tokens, finish = _drain(reader, first)
        assert finish == "length" and len(tokens) == BUDGET
        answers.append(tokens)
    if failing is not None:
        with pytest.raises(RuntimeError, match="generation failed"):
            list(failing.tokens(timeout_s=120))
    return answers


@pytest.mark.parametrize("fault", ["nan", "raise", "sampling"])
def test_one_failing_generation_leaves_the_others_running(fault: str) -> None:
    check_isolation(fault, torch.device("cpu"))


def check_isolation(fault: str, device: torch.device) -> None:
    """(tests/gpu runs this on CUDA, with the Triton kernels and CUDA graphs)"""
    reference = _batcher("none", device)
    want = _healthy_answers(reference, None)
    reference.close()

    batcher = _batcher("none" if fault == "sampling" else fault, device)
    bad = SamplingParams(max_tokens=20, temperature=1.0)
    if fault == "sampling":
        object.__setattr__(bad, "temperature", math.nan)  # past the checks: sampling it raises
    got = _healthy_answers(batcher, bad)
    assert got == want
    stats = batcher.stats
    assert stats.failed == 1 and stats.finished == 3 and stats.max_active == 4, stats
    assert batcher.active == 0 and batcher.free_pages == batcher.decoder.pages - 1
    # it serves on: a new generation beside nothing faulty finishes
    again = batcher.submit(HEALTHY[0], GREEDY, 5)
    tokens, finish = _drain(again.tokens(timeout_s=120), [])
    assert finish == "length" and tokens == want[0][:5]
    batcher.close()
