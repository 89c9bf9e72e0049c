"""Choosing the next token: greedy, or sampling with temperature, top-k, top-p and a
repetition penalty, reproducible from a seed.

Every value SamplingParams accepts gives a valid token id: the arithmetic is float32 on scores
made safe first (NaN as -inf, never drawn; +inf as the largest float32), nothing is divided
by less than MIN_DIVISOR (1e-300 is 0 in float32: the scores became inf and NaN, and one such
request once failed every generation decoded beside it), and each row's best score is shifted
to 0 before the temperature divides it, so no division overflows upwards. A row with no usable
score at all (the model gave NaN or -inf throughout) gets NO_TOKEN: its caller fails that
generation alone."""

from __future__ import annotations

import torch

from altlas.generation.params import (
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MAX_TOKENS,
    MAX_TOP_K,
    MIN_DIVISOR,
    NO_TOKEN,
    SamplingParams,
)

__all__ = [
    "MAX_REPETITION_PENALTY",
    "MAX_TEMPERATURE",
    "MAX_TOKENS",
    "MAX_TOP_K",
    "MIN_DIVISOR",
    "NO_TOKEN",
    "SamplingParams",
    "UnusableLogitsError",
    "next_token",
    "next_tokens",
]

_FLOAT32_MAX = torch.finfo(torch.float32).max


class UnusableLogitsError(RuntimeError):
    """The model gave no usable score (all NaN or -inf) for a generation's next token."""

    def __init__(self) -> None:
        super().__init__("the model gave no usable score (NaN or -inf throughout) for the next token")


def next_token(
    logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    """The next token id (a 0-d tensor on the logits' device) from last-position logits [vocab];
    NO_TOKEN if none of them is usable.

    `seen` holds the ids of the prompt and the answer so far, for the repetition penalty
    (the CTRL rule that transformers also uses: divide positive logits, multiply negative).
    """
    scores, usable = _scores(logits[None])
    return torch.where(usable[0], _one_row(scores[0], params, seen, generator), NO_TOKEN)


def next_tokens(
    logits: torch.Tensor, params: list[SamplingParams], seen: list[torch.Tensor | None],
    generators: list[torch.Generator | None],
) -> list[int]:  # fmt: skip
    """The next token of every row of `logits` [rows, vocab] (one decode step of a batch);
    NO_TOKEN for a row with no usable logit.

    Greedy rows are one argmax; rows sampled without a seed or a repetition penalty share
    one sort (temperature, top-k, top-p per row, the same rule as `next_token`); the rest
    (seeded, for reproducible draws, or penalised) go one at a time through `next_token`'s rule.
    The ids come to the host in one copy at the end."""
    scores, usable = _scores(logits)
    rows = scores.shape[0]
    plain = [r for r in range(rows) if params[r].repetition_penalty == 1.0]
    greedy = [r for r in plain if params[r].greedy]
    sampled = [r for r in plain if not params[r].greedy and params[r].seed is None]
    if len(greedy) == rows:
        chosen = torch.argmax(scores, dim=-1)
    else:
        chosen = torch.empty(rows, dtype=torch.long, device=scores.device)
        if greedy:
            at = torch.tensor(greedy, device=scores.device)
            chosen[at] = torch.argmax(scores[at], dim=-1)
        if sampled:
            at = torch.tensor(sampled, device=scores.device)
            chosen[at] = _sample_rows(scores[at], [params[r] for r in sampled])
        for r in sorted(set(range(rows)) - set(greedy) - set(sampled)):
            chosen[r] = _one_row(scores[r], params[r], seen[r], generators[r])
    return [int(t) for t in torch.where(usable, chosen, NO_TOKEN).tolist()]


def _scores(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 scores of logits [rows, vocab] that every later step can take, and [rows] whether
    the row had a usable logit (not NaN, not -inf) at all. NaN becomes -inf (never drawn), +inf
    the largest float32; a row with nothing usable becomes zeros (its draw is thrown away), so
    every row has a finite best."""
    raw = logits.float()
    usable = (raw > float("-inf")).any(dim=-1)  # NaN compares false
    scores = torch.nan_to_num(raw, nan=float("-inf"), posinf=_FLOAT32_MAX, neginf=float("-inf"))
    return torch.where(usable[:, None], scores, 0.0), usable


def _one_row(
    scores: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    """The token of one row of `_scores` [vocab], its penalty applied (a 0-d tensor)."""
    if params.repetition_penalty != 1.0 and seen is not None and seen.numel():
        scores = _penalised(scores, params.repetition_penalty, seen)
    if params.greedy:
        return torch.argmax(scores)
    return _sample_rows(scores[None], [params], generator)[0]


def _penalised(scores: torch.Tensor, penalty: float, seen: torch.Tensor) -> torch.Tensor:
    """CTRL's repetition penalty on `_scores` [vocab]: finite scores stay finite, -inf stays."""
    divisor = max(penalty, MIN_DIVISOR)
    picked = scores[seen]
    penalised = torch.where(picked > 0, picked / divisor, picked * divisor)
    scores = scores.clone()
    scores[seen] = torch.where(picked > float("-inf"), penalised.clamp(-_FLOAT32_MAX, _FLOAT32_MAX), picked)
    return scores


def _sample_rows(
    scores: torch.Tensor, params: list[SamplingParams], generator: torch.Generator | None = None
) -> torch.Tensor:
    """A draw from each row of `_scores` [rows, vocab]: temperature, then top-k and top-p
    over the row sorted best first (the best token always stays)."""
    device = scores.device
    ordered, order = torch.sort(scores, dim=-1, descending=True)
    temperature = torch.tensor([max(p.temperature, MIN_DIVISOR) for p in params], device=device)
    # the best at 0, the rest below it: dividing gives 0, negatives or -inf, never +inf or NaN
    ordered = (ordered - ordered[:, :1]) / temperature[:, None]
    vocab = scores.shape[-1]
    top_k = torch.tensor([p.top_k if 0 < p.top_k < vocab else vocab for p in params], device=device)
    ranks = torch.arange(vocab, device=device)[None, :]
    ordered = ordered.masked_fill(ranks >= top_k[:, None], float("-inf"))
    top_p = torch.tensor([p.top_p for p in params], device=device)
    probabilities = torch.softmax(ordered, dim=-1)
    # keep the smallest prefix whose mass reaches top_p (the first token always stays, even
    # for a top_p that is 0 in float32)
    reached = probabilities.cumsum(dim=-1) - probabilities >= top_p[:, None]
    drop = reached & (top_p[:, None] < 1.0) & (ranks > 0)
    probabilities = torch.softmax(ordered.masked_fill(drop, float("-inf")), dim=-1)
    picked = torch.multinomial(probabilities, 1, generator=generator)
    return order.gather(1, picked)[:, 0]
