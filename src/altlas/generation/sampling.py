"""Choosing the next token: greedy, or sampling with temperature, top-k, top-p and a
repetition penalty, reproducible from a seed."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from altlas.errors import InvalidInputError

__all__ = ["SamplingParams", "next_token"]


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens and when to stop. temperature 0 means greedy (argmax)."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the prompt or answer
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_tokens <= 1_000_000:
            raise InvalidInputError(
                f"must be a positive number of tokens, got {self.max_tokens}", field="max_tokens"
            )
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidInputError(f"must be between 0 and 2, got {self.temperature}", field="temperature")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInputError(f"must be in (0, 1], got {self.top_p}", field="top_p")
        if self.top_k < 0:
            raise InvalidInputError(f"must be >= 0 (0 = off), got {self.top_k}", field="top_k")
        if not 0.0 < self.repetition_penalty <= 10.0:
            raise InvalidInputError(
                f"must be in (0, 10], got {self.repetition_penalty}", field="repetition_penalty"
            )
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidInputError(f"must be between 0 and 2**63 - 1, got {self.seed}", field="seed")
        if len(self.stop) > 4 or any(not s for s in self.stop):
            raise InvalidInputError("up to 4 non-empty stop sequences", field="stop")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def next_token(
    logits: torch.Tensor, params: SamplingParams, seen: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    """The next token id (a 0-d tensor on the logits' device) from last-position logits [vocab].

    `seen` holds the ids of the prompt and the answer so far, for the repetition penalty
    (the CTRL rule that transformers also uses: divide positive logits, multiply negative).
    """
    logits = logits.float()
    if params.repetition_penalty != 1.0 and seen is not None and seen.numel():
        picked = logits[seen]
        logits = logits.clone()
        logits[seen] = torch.where(
            picked > 0, picked / params.repetition_penalty, picked * params.repetition_penalty
        )
    if params.greedy:
        return torch.argmax(logits)
    logits = logits / params.temperature
    if 0 < params.top_k < logits.numel():
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = torch.where(logits < kth, float("-inf"), logits)
    if params.top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = cumulative - torch.softmax(ordered, dim=-1) >= params.top_p
        logits = logits.scatter(0, order[drop], float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator)[0]


def next_tokens(
    logits: torch.Tensor, params: list[SamplingParams], seen: list[torch.Tensor | None],
    generators: list[torch.Generator | None],
) -> list[int]:  # fmt: skip
    """The next token of every row of `logits` [rows, vocab] (one decode step of a batch).

    Greedy rows are one argmax; rows sampled without a seed or a repetition penalty share
    one sort (temperature, top-k, top-p per row, the same rule as `next_token`); the rest
    (seeded, for reproducible draws, or penalised) go one at a time through `next_token`."""
    rows = logits.shape[0]
    chosen = torch.empty(rows, dtype=torch.long, device=logits.device)
    plain = [r for r in range(rows) if params[r].repetition_penalty == 1.0]
    greedy = [r for r in plain if params[r].greedy]
    sampled = [r for r in plain if not params[r].greedy and params[r].seed is None]
    if len(greedy) == rows:
        return [int(t) for t in torch.argmax(logits, dim=-1).tolist()]
    if greedy:
        at = torch.tensor(greedy, device=logits.device)
        chosen[at] = torch.argmax(logits[at], dim=-1)
    if sampled:
        at = torch.tensor(sampled, device=logits.device)
        chosen[at] = _sample_rows(logits[at].float(), [params[r] for r in sampled])
    for r in set(range(rows)) - set(greedy) - set(sampled):
        chosen[r] = next_token(logits[r], params[r], seen[r], generators[r])
    return [int(t) for t in chosen.tolist()]


def _sample_rows(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    device = logits.device
    temperature = torch.tensor([p.temperature for p in params], device=device)
    ordered, order = torch.sort(logits / temperature[:, None], dim=-1, descending=True)
    vocab = logits.shape[-1]
    top_k = torch.tensor([p.top_k if 0 < p.top_k < vocab else vocab for p in params], device=device)
    ranks = torch.arange(vocab, device=device)[None, :]
    ordered = ordered.masked_fill(ranks >= top_k[:, None], float("-inf"))
    top_p = torch.tensor([p.top_p for p in params], device=device)
    probabilities = torch.softmax(ordered, dim=-1)
    # keep the smallest prefix whose mass reaches top_p (the first token always stays)
    drop = (probabilities.cumsum(dim=-1) - probabilities >= top_p[:, None]) & (top_p[:, None] < 1.0)
    probabilities = torch.softmax(ordered.masked_fill(drop, float("-inf")), dim=-1)
    picked = torch.multinomial(probabilities, 1)
    return order.gather(1, picked)[:, 0]
