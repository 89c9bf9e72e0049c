"""How to pick tokens and when to stop (SamplingParams) and the bounds of its values: what an
API process checks and sends to an engine, without torch (altlas.generation.sampling picks the
tokens)."""

from __future__ import annotations

from dataclasses import dataclass, field

from altlas.errors import InvalidInputError

__all__ = [
    "MAX_REPETITION_PENALTY", "MAX_TEMPERATURE", "MAX_TOKENS", "MAX_TOP_K", "MIN_DIVISOR", "NO_TOKEN",
    "SamplingParams",
]  # fmt: skip

MAX_TEMPERATURE = 2.0
MAX_REPETITION_PENALTY = 10.0
MAX_TOKENS = 1_000_000
MAX_TOP_K = 1_000_000  # more than any vocabulary; a top_k of the vocabulary or more is no cut
MIN_DIVISOR = 1e-6
"""A temperature or repetition penalty below this acts as this. At temperature 1e-6 a token
1e-4 behind the best logit is e^-100 times as likely as the best: greedy, in effect."""
NO_TOKEN = -1  # the "token" of a row of logits with no usable score


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
        if not 1 <= self.max_tokens <= MAX_TOKENS:
            raise InvalidInputError(
                f"must be 1 to {MAX_TOKENS:,} tokens, got {self.max_tokens}", field="max_tokens"
            )
        if not 0.0 <= self.temperature <= MAX_TEMPERATURE:  # NaN fails every comparison
            raise InvalidInputError(
                f"must be between 0 and {MAX_TEMPERATURE:g}, got {self.temperature}", field="temperature"
            )
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInputError(f"must be in (0, 1], got {self.top_p}", field="top_p")
        if not 0 <= self.top_k <= MAX_TOP_K:
            raise InvalidInputError(f"must be 0 (off) to {MAX_TOP_K:,}, got {self.top_k}", field="top_k")
        if not 0.0 < self.repetition_penalty <= MAX_REPETITION_PENALTY:
            raise InvalidInputError(
                f"must be in (0, {MAX_REPETITION_PENALTY:g}], got {self.repetition_penalty}",
                field="repetition_penalty",
            )
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidInputError(f"must be between 0 and 2**63 - 1, got {self.seed}", field="seed")
        if len(self.stop) > 4 or any(not s for s in self.stop):
            raise InvalidInputError("up to 4 non-empty stop sequences", field="stop")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0
