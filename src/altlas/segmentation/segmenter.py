"""Command -> ALT plan: the pipeline of separable stages.

    tokenize -> detect language -> split clauses -> classify -> extract parameters
             -> plan dependencies -> mode and persona -> priorities and order

Each stage is a plain function of its own module, so a later stage (an embedding
classifier for clauses the lexicon cannot decide) can replace or follow one
without touching the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from altlas.errors import InputTooLargeError, InvalidInputError
from altlas.plans.codec import check_chaos_level, non_finite_path
from altlas.plans.model import AltFile, Language, Mode, Persona, Segment, TaskType
from altlas.plans.priorities import PriorityRequest, PriorityWeights, prioritize
from altlas.segmentation.classifier import CONFIDENCE_UNKNOWN, Action
from altlas.segmentation.language import detect_language
from altlas.segmentation.modes import apply_mode, apply_persona, chaos_probability, seeded_rng
from altlas.segmentation.parameters import extract_parameters
from altlas.segmentation.splitter import Clause, Merged, split_clauses
from altlas.segmentation.text import Token, fold, quoted_spans, tokenize

__all__ = ["MAX_COMMAND_CHARS", "SEGMENTER_NAME", "SegmentationOptions", "segment_command"]

MAX_COMMAND_CHARS = 10_000
SEGMENTER_NAME = "altlas-rules/1"


@dataclass(frozen=True, slots=True)
class SegmentationOptions:
    """Everything a request may say besides the command itself."""

    language: Language | None = None  # None: detect
    mode: Mode = Mode.NORMAL
    persona: Persona = Persona.TECHNICAL_EXPERT
    chaos_level: int | None = None
    seed: int | None = None  # None: derived from the command, so a command always gives one plan
    urgency: int = 5
    deadline: datetime | None = None
    user_preferences: Mapping[str, int] = field(default_factory=dict)
    weights: PriorityWeights = field(default_factory=PriorityWeights)
    metadata: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        check_chaos_level(self.mode, self.chaos_level)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InvalidInputError(f"must be an integer, got {self.seed!r}", field="seed")
        self.priority_request()  # checks urgency and preferences
        bad_number = non_finite_path(dict(self.metadata or {}), "metadata")
        if bad_number:
            raise InvalidInputError("must be a finite number (JSON has no NaN or Infinity)", field=bad_number)

    def priority_request(self) -> PriorityRequest:
        return PriorityRequest(self.urgency, self.deadline, self.user_preferences, self.weights)


def check_command(command: object) -> str:
    """The command if usable, else an error naming the `command` field."""
    if not isinstance(command, str):
        raise InvalidInputError("must be a string", field="command")
    if len(command) > MAX_COMMAND_CHARS:
        raise InputTooLargeError(
            f"is {len(command):,} characters; the limit is {MAX_COMMAND_CHARS:,}", field="command"
        )
    if not command.strip():
        raise InvalidInputError("must not be empty", field="command")
    return command


def segment_command(
    command: str, options: SegmentationOptions | None = None, *, now: datetime | None = None
) -> AltFile:
    """Turn one command (English or Turkish) into a validated ALT plan."""
    options = options or SegmentationOptions()
    command = check_command(command)
    priorities = options.priority_request()
    tokens = tokenize(command)
    if not any(t.is_word for t in tokens):
        raise InvalidInputError("has no words to segment", field="command")
    guess = detect_language(command, tokens)
    language = options.language or guess.language
    clauses = split_clauses(tokens, language, quoted_spans(command))
    folded = fold(command)
    segments = [_segment(command, folded, clause, i, language) for i, clause in enumerate(clauses)]
    _link(segments, clauses)
    seed = options.seed if options.seed is not None else _seed_of(command)
    plan = AltFile(
        command=command, language=language, segments=segments, mode=options.mode,
        persona=options.persona, chaos_level=options.chaos_level,
    )  # fmt: skip
    plan.metadata = {
        "source": SEGMENTER_NAME,
        "seed": seed,
        "detected_language": {"language": guess.language.value, "confidence": guess.confidence},
        "user": dict(options.metadata or {}),
    }
    apply_mode(plan, seed)
    apply_persona(plan, seed, options.deadline)
    prioritize(
        plan, priorities, now=now, rng=seeded_rng(seed, "order"), shuffle_probability=chaos_probability(plan)
    )
    if plan.mode is Mode.CHAOS:  # "reordered independent segments": list them in their new order
        order = {sid: i for i, sid in enumerate(plan.metadata["execution_order"])}
        plan.segments.sort(key=lambda s: order[s.id])
    return plan


def _seed_of(command: str) -> int:
    return int.from_bytes(hashlib.blake2b(command.encode(), digest_size=4).digest(), "big")


def _segment(command: str, folded: str, clause: Clause, index: int, language: Language) -> Segment:
    action = clause.action
    task_type = action.task_type if action else TaskType.EXECUTE
    confidence = action.confidence if action else CONFIDENCE_UNKNOWN - 0.1
    words = clause.words
    start, end = clause.span
    parameters = extract_parameters(command, folded, words, action, task_type, language)
    metadata: dict[str, Any] = {
        "confidence": confidence,
        "span": [start, end],
        "verb": _verb(words, action),
        "marker": _marker_name(clause),
        "parallel": clause.parallel,
    }
    if clause.merged:
        # The content covers what was merged ("Close Word without saving"); the parameters
        # are the clause's own.
        start = min(start, *(m.clause.span[0] for m in clause.merged))
        end = max(end, *(m.clause.span[1] for m in clause.merged))
        metadata["span"] = [start, end]
        metadata["merged"] = [_merged(command, merged) for merged in clause.merged]
    return Segment(f"seg-{index + 1}", task_type, command[start:end], parameters, [], metadata)


def _verb(words: list[Token], action: Action | None) -> str | None:
    return " ".join(w.text for w in words[action.start : action.end]) if action else None


def _merged(command: str, merged: Merged) -> dict[str, Any]:
    """A clause with a verb that is part of the segment, and why: nothing is lost silently."""
    start, end = merged.clause.span
    action = merged.clause.action
    return {
        "reason": merged.reason,
        "content": command[start:end],
        "span": [start, end],
        "verb": _verb(merged.clause.words, action),
        "task_type": action.task_type.value if action else None,
    }


def _marker_name(clause: Clause) -> str | None:
    if clause.relation is not None:  # after, before, while, without: a subordinate clause
        return clause.relation
    for kind in ("parallel", "sequence", "conjunction"):
        if kind in clause.markers:
            return kind
    return None


def _link(segments: list[Segment], clauses: list[Clause]) -> None:
    """Each segment waits for the one before it, except a parallel one, which shares its prerequisites."""
    for i in range(1, len(segments)):
        previous = segments[i - 1]
        segments[i].dependencies = list(previous.dependencies) if clauses[i].parallel else [previous.id]
