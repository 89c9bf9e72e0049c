"""Split a command into clauses, one per action.

Candidate boundaries are punctuation, conjunctions and sequence or parallel
markers (and, then, meanwhile / ve, sonra, aynı anda), and Turkish converbs
("çalıştırıp") that chain one action to the next. Every candidate splits first;
then each clause without an action verb is joined back to its neighbour, with the
boundary text inside it again. That keeps "salt and pepper" or "iki saat sonra"
whole without a special rule for each marker. English verbs lead their clause,
so a verbless clause joins the one before it; Turkish verbs close theirs, so a
verbless clause joins the one after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from altlas.plans.model import Language
from altlas.segmentation import turkish_verbs
from altlas.segmentation.classifier import Action, find_action
from altlas.segmentation.lexicon import EN_MARKERS, TR_MARKERS, Marker
from altlas.segmentation.text import Token

__all__ = ["Clause", "split_clauses"]


@dataclass(slots=True)
class Clause:
    """Tokens `[start, end)` of the command, with the markers that introduced them."""

    tokens: list[Token]  # all tokens of the command
    start: int
    end: int
    markers: frozenset[str] = frozenset()
    action: Action | None = None
    parallel: bool = False

    @property
    def words(self) -> list[Token]:
        return [t for t in self.tokens[self.start : self.end] if t.is_word]

    @property
    def span(self) -> tuple[int, int]:
        """Character span of the clause's content: words only, no edge punctuation."""
        words = self.words
        return (words[0].start, words[-1].end) if words else (0, 0)

    @property
    def is_action(self) -> bool:
        return self.action is not None and self.action.at_head


def _index(markers: dict[tuple[str, ...], str]) -> dict[str, list[tuple[tuple[str, ...], str]]]:
    by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for phrase, kind in sorted(markers.items(), key=lambda kv: -len(kv[0])):
        by_first.setdefault(phrase[0], []).append((phrase, kind))
    return by_first


_MARKERS = {Language.EN: _index(EN_MARKERS), Language.TR: _index(TR_MARKERS)}


def _marker_at(tokens: list[Token], i: int, language: Language) -> tuple[int, str] | None:
    """(length, kind) of the longest marker phrase starting at token i."""
    for phrase, kind in _MARKERS[language].get(tokens[i].key, ()):
        n = len(phrase)
        if i + n <= len(tokens) and all(
            tokens[i + k].is_word and tokens[i + k].key == phrase[k] for k in range(n)
        ):
            return n, kind
    return None


def _is_converb(token: Token) -> bool:
    verb = turkish_verbs.lookup(token.key)
    return verb is not None and verb.shape is turkish_verbs.VerbShape.CONVERB


def _candidates(tokens: list[Token], language: Language, quoted: list[tuple[int, int]]) -> list[Clause]:
    """Split at every candidate boundary; boundary tokens fall in the gaps between clauses."""
    clauses: list[Clause] = []
    pending: set[str] = set()
    start = i = 0

    def close(end: int) -> None:
        nonlocal pending
        if any(t.is_word for t in tokens[start:end]):
            clauses.append(Clause(tokens, start, end, frozenset(pending)))
            pending = set()

    def trailing_parallel() -> None:
        """A parallel marker that ends a sentence belongs to the clause before it."""
        nonlocal pending
        if Marker.PARALLEL in pending and clauses:
            clauses[-1].markers = clauses[-1].markers | {Marker.PARALLEL}
            pending = pending - {Marker.PARALLEL}

    while i < len(tokens):
        token = tokens[i]
        if any(qs < token.start < qe for qs, qe in quoted):
            i += 1  # quoted text ("... saying 'I'll be late, start without me'") is never split
            continue
        marker = None if not token.is_word else _marker_at(tokens, i, language)
        if not token.is_word or marker is not None:
            close(i)
            if not token.is_word and token.key != ",":
                trailing_parallel()
            length = 1 if marker is None else marker[0]
            if marker is not None:
                pending.add(marker[1])
            i += length
            start = i
            continue
        i += 1
        if language is Language.TR and _is_converb(token):
            close(i)
            pending.add(Marker.SEQUENCE)
            start = i
    close(len(tokens))
    trailing_parallel()
    return clauses


def split_clauses(
    tokens: list[Token], language: Language, quoted: list[tuple[int, int]] | None = None
) -> list[Clause]:
    """Clauses of the command in order, each holding one action (or one clause if none has any).

    `quoted`: character spans of quoted text, which is never split.
    """
    clauses = _candidates(tokens, language, quoted or [])
    if not clauses and any(t.is_word for t in tokens):  # only markers ("and then"): one clause of them
        clauses = [Clause(tokens, 0, len(tokens))]
    for clause in clauses:
        clause.action = find_action(clause.words, language)
    merged = _join_verbless(clauses, language)
    for clause in merged:
        _mark_parallel(clause, language)
    return merged


def _join(first: Clause, second: Clause, language: Language) -> Clause:
    clause = Clause(first.tokens, first.start, second.end, first.markers)
    clause.action = find_action(clause.words, language)
    return clause


def _join_verbless(clauses: list[Clause], language: Language) -> list[Clause]:
    forward = language is Language.EN
    # Turkish walks from the end, so that a verbless clause joins the clause after it.
    ordered = clauses if forward else clauses[::-1]
    result: list[Clause] = []
    carry: Clause | None = None
    for clause in ordered:
        if carry is not None:
            clause = _join(carry, clause, language) if forward else _join(clause, carry, language)
            carry = None
        if clause.is_action:
            result.append(clause)
        elif result:
            last = result[-1]
            result[-1] = _join(last, clause, language) if forward else _join(clause, last, language)
        else:
            carry = clause
    if carry is not None:  # no clause has an action: the whole command is one
        result.append(carry)
    return result if forward else result[::-1]


def _mark_parallel(clause: Clause, language: Language) -> None:
    """Parallel if a parallel marker introduced the clause or ends it (then cut from it)."""
    if Marker.PARALLEL in clause.markers:
        clause.parallel = True
        return
    words = clause.words
    for cut in range(1, min(5, len(words))):
        marker = _marker_at(words, len(words) - cut, language)
        if marker is not None and marker == (cut, Marker.PARALLEL):
            clause.parallel = True
            clause.end = clause.tokens.index(words[-cut])
            return
