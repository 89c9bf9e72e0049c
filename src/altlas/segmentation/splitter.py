"""Split a command into clauses, one per action.

Candidate boundaries are punctuation, conjunctions and sequence or parallel
markers (and, then, meanwhile / ve, sonra, aynı anda), and Turkish converbs
("çalıştırıp") that chain one action to the next. Every candidate splits first;
then each clause without an action verb is joined back to its neighbour, with the
boundary text inside it again. That keeps "salt and pepper" or "iki saat sonra"
whole without a special rule for each marker. English verbs lead their clause,
so a verbless clause joins the one before it; Turkish verbs close theirs, so a
verbless clause joins the one after it.

A subordinate clause ("after saving it", "before closing Word", "while it
downloads", "without saving"; Turkish "indirdikten sonra", "kapatmadan önce",
"indirirken", "kaydetmeden") is then ordered against its main clause: the plan
lists actions in the order they are to happen, whatever the order of the words.
A clause whose action is negated ("without saving") is no step: it is merged
into its main clause, and the merge is recorded with its reason (`Merged`), as
is every other merge of a clause that holds a verb. No verb is dropped silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from altlas.plans.model import Language
from altlas.segmentation import turkish_verbs
from altlas.segmentation.classifier import Action, find_action
from altlas.segmentation.lexicon import EN_MARKERS, TR_MARKERS, Marker
from altlas.segmentation.text import Token

__all__ = ["REASON_NEGATED", "REASON_VERB_INSIDE", "Clause", "Merged", "split_clauses"]

# Why a clause holding a verb is no segment of its own.
REASON_NEGATED = "negated"  # "close Word without saving": the user asks that it not be done
REASON_VERB_INSIDE = "verb_not_at_head"  # its verb is not where the language puts it: part of a neighbour

_SENTENCE_ENDS = frozenset({".", "...", "!", "?", ";", "\n", "…"})
_TR_BEFORE = frozenset({"once", "evvel"})  # "kapatmadan önce": before closing
_TR_INSTEAD = "yerine"  # "silmek yerine": instead of deleting


@dataclass(slots=True)
class Clause:
    """Tokens `[start, end)` of the command, with the markers that introduced them."""

    tokens: list[Token]  # all tokens of the command
    start: int
    end: int
    markers: frozenset[str] = frozenset()
    action: Action | None = None
    parallel: bool = False
    relation: str | None = None  # Marker.AFTER / BEFORE / WHILE / WITHOUT: a subordinate clause
    chained: bool = False  # joined by "and" to the subordinate clause before it, in the same form
    glued: bool = False  # its subordinator follows the previous clause directly: "close it after saving"
    initial: bool = False  # starts a sentence
    opener: int | None = None  # token index of the subordinator that introduced it ("after")
    gerund: bool = False  # an English gerund may lead it: "... and opening the settings"
    merged: list[Merged] = field(default_factory=list)
    # Token indices of Turkish negated converbs inside ("kaydetmeden", "silmek yerine"): not part
    # of the clause's words, so that its object stays its own ("dosyaları sormadan sil").
    negated: tuple[int, ...] = ()

    @property
    def words(self) -> list[Token]:
        if self.negated:
            span = range(self.start, self.end)
            return [self.tokens[i] for i in span if self.tokens[i].is_word and i not in self.negated]
        return [t for t in self.tokens[self.start : self.end] if t.is_word]

    @property
    def span(self) -> tuple[int, int]:
        """Character span of the clause's content: words only, no edge punctuation."""
        words = self.words
        return (words[0].start, words[-1].end) if words else (0, 0)

    @property
    def is_action(self) -> bool:
        return self.action is not None and self.action.at_head

    def classify(self, language: Language) -> None:
        subordinate = self.relation is not None and language is Language.EN
        self.action = find_action(
            self.words, language, subordinate=subordinate, gerund=self.gerund, initial=self.initial
        )


@dataclass(frozen=True, slots=True)
class Merged:
    """A clause holding a verb that is part of another segment, and why."""

    reason: str
    clause: Clause


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


def _converb(tokens: list[Token], i: int) -> turkish_verbs.VerbForm | None:
    """The converb at tokens[i] ("açıp", "indirdikten", "sulayıp"), which ends its clause."""
    key = tokens[i].key
    verb = turkish_verbs.lookup(key)
    if verb is None:
        verb = turkish_verbs.guess(key) if len(key) >= 6 else None
    elif verb.nominal and i + 1 < len(tokens) and tokens[i + 1].key == _TR_INSTEAD:
        # "silmek yerine": instead of deleting
        return turkish_verbs.VerbForm(verb.stem, verb.task_type, verb.shape, turkish_verbs.Link.WITHOUT)
    return verb if verb is not None and verb.shape is turkish_verbs.VerbShape.CONVERB else None


def _converb_relation(converb: turkish_verbs.VerbForm, tokens: list[Token], i: int) -> tuple[str | None, int]:
    """The relation a converb gives its clause, and how many words after it belong to it
    ("kapatmadan önce": before closing; "silmek yerine": instead of deleting)."""
    if converb.link is None:
        return None, 0
    if converb.link is not turkish_verbs.Link.WITHOUT:
        return converb.link.value, 0
    following = tokens[i].key if i < len(tokens) else ""
    if following in _TR_BEFORE:
        return Marker.BEFORE, 1
    return Marker.WITHOUT, int(following == _TR_INSTEAD)


def _sentence_start(tokens: list[Token], start: int) -> bool:
    if start == 0:
        return True
    before = tokens[start - 1]
    if before.key not in _SENTENCE_ENDS:
        return False
    word = tokens[start - 2] if start >= 2 else None  # "Dr. Brown": an abbreviation, no sentence end
    return not (before.key == "." and word is not None and len(word.text) <= 3 and word.text[:1].isupper())


def _candidates(tokens: list[Token], language: Language, quoted: list[tuple[int, int]]) -> list[Clause]:
    """Split at every candidate boundary; boundary tokens fall in the gaps between clauses."""
    clauses: list[Clause] = []
    first_words = _MARKERS[language]  # first words of the marker phrases
    pending: set[str] = set()
    relation: str | None = None
    punctuated = False  # punctuation in the gap before the clause being read
    negated: list[int] = []
    opener: int | None = None
    start = i = 0

    def close(end: int) -> Clause | None:
        nonlocal pending, relation, punctuated, negated
        if not any(t.is_word for t in tokens[start:end]):
            if relation is not None:  # "when you're done, send it", "after, email it": then
                pending.add(Marker.SEQUENCE)
                relation = None
            return None
        glued = relation is not None and not punctuated and not pending and bool(clauses)
        clause = Clause(tokens, start, end, frozenset(pending), relation=relation, glued=glued)
        clause.opener = opener if relation is not None else None
        clause.initial = _sentence_start(tokens, start)
        clause.negated = tuple(negated)
        clauses.append(clause)
        pending, relation, punctuated, negated = set(), None, False, []
        return clause

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
        marker = _marker_at(tokens, i, language) if token.is_word and token.key in first_words else None
        if not token.is_word or marker is not None:
            close(i)
            if not token.is_word:
                punctuated = True
                if token.key != ",":
                    trailing_parallel()
            length = 1 if marker is None else marker[0]
            if marker is not None and marker[1] in Marker.SUBORDINATE:
                relation, opener = marker[1], i
            elif marker is not None:
                pending.add(marker[1])
            i += length
            start = i
            continue
        i += 1
        converb = _converb(tokens, i - 1) if language is Language.TR else None
        if converb is not None:
            relation_here, skip = _converb_relation(converb, tokens, i)
            if relation_here == Marker.WITHOUT:  # "kaydetmeden kapat": no boundary, no step
                negated.extend(range(i - 1, i + skip))
                i += skip
                continue
            clause = close(i)
            if clause is not None:
                clause.relation = relation_here
            if relation_here in (None, Marker.AFTER, Marker.BEFORE):
                pending.add(Marker.SEQUENCE)
            i += skip
            start = i
    close(len(tokens))
    trailing_parallel()
    return clauses


def split_clauses(
    tokens: list[Token], language: Language, quoted: list[tuple[int, int]] | None = None
) -> list[Clause]:
    """Clauses of the command in the order their actions happen, each holding one action
    (or one clause if none has any).

    `quoted`: character spans of quoted text, which is never split.
    """
    clauses = _candidates(tokens, language, quoted or [])
    if not clauses and any(t.is_word for t in tokens):  # only markers ("and then"): one clause of them
        clauses = [Clause(tokens, 0, len(tokens), initial=True)]
    _classify(clauses, language)
    for clause in clauses:
        if clause.negated:
            clause.merged.extend(_negated_verbs(clause, language))
    merged = _join_verbless(clauses, language)
    for clause in merged:
        _mark_parallel(clause, language)
    return _order(merged, language)


def _negated_verbs(clause: Clause, language: Language) -> list[Merged]:
    """A clause per run of negated converb tokens in the clause ("silmek yerine")."""
    runs: list[Merged] = []
    indices = clause.negated
    first = 0
    for k in range(1, len(indices) + 1):
        if k == len(indices) or indices[k] != indices[k - 1] + 1:
            negated = Clause(clause.tokens, indices[first], indices[k - 1] + 1)
            negated.classify(language)
            runs.append(Merged(REASON_NEGATED, negated))
            first = k
    return runs


def _classify(clauses: list[Clause], language: Language) -> None:
    previous: Clause | None = None
    for clause in clauses:
        if (
            language is Language.EN
            and previous is not None
            and previous.action is not None
            and previous.action.inflected
            and clause.relation is None
            and clause.markers == {Marker.CONJUNCTION}
        ):
            # "after downloading and unzipping it", "would you mind closing it and opening ...":
            # the clause after "and" may take the same form, and belongs with the one before.
            chained = Clause(clause.tokens, clause.start, clause.end, relation=previous.relation, gerund=True)
            chained.classify(language)
            if chained.action is not None and chained.action.inflected:
                clause.relation, clause.gerund, clause.action = previous.relation, True, chained.action
                clause.chained = previous.relation is not None
                previous = clause
                continue
        clause.classify(language)
        previous = clause


def _join(first: Clause, second: Clause, language: Language, holder: Clause) -> Clause:
    """One clause of `first` and `second`; `holder` is the one whose action it keeps."""
    # A verbless subordinate clause brings its subordinator along: "Before 5 pm, back it up".
    start = first.opener if first.opener is not None and first is not holder else first.start
    clause = Clause(
        first.tokens, start, second.end, first.markers, relation=holder.relation,
        chained=holder.chained, glued=first.glued, initial=first.initial, gerund=holder.gerund,
        merged=first.merged + second.merged, negated=first.negated + second.negated,
    )  # fmt: skip
    action = holder.action
    if holder is second and action is not None and action.at_head and language is Language.EN:
        # "After I get home, turn on the heater": a verbless clause before the verb does not move it.
        shift = len(clause.words) - len(second.words)
        clause.action = dataclasses.replace(action, start=action.start + shift, end=action.end + shift)
    else:
        clause.classify(language)
    other = second if holder is first else first
    if other.action is not None and _verb_token(other) is not _verb_token(clause):
        clause.merged.append(Merged(REASON_VERB_INSIDE, other))  # a verb away from its place
    return clause


def _verb_token(clause: Clause) -> Token | None:
    return clause.words[clause.action.start] if clause.action is not None else None


def _join_verbless(clauses: list[Clause], language: Language) -> list[Clause]:
    forward = language is Language.EN
    # Turkish walks from the end, so that a verbless clause joins the clause after it.
    ordered = clauses if forward else clauses[::-1]
    result: list[Clause] = []
    carry: Clause | None = None
    for index, clause in enumerate(ordered):
        if carry is not None:
            first, second = (carry, clause) if forward else (clause, carry)
            clause = _join(first, second, language, clause)
            carry = None
        if clause.is_action:
            result.append(clause)
        elif result and not (forward and _leads(clause) and index + 1 < len(ordered)):
            # (a verbless subordinate clause before a comma belongs to the clause after it:
            # "Open Chrome and, after it loads, search for hotels")
            last = result[-1]
            first, second = (last, clause) if forward else (clause, last)
            result[-1] = _join(first, second, language, last)
        else:
            carry = clause
    if carry is not None:  # no clause has an action: the whole command is one
        result.append(carry)
    return result if forward else result[::-1]


def _leads(clause: Clause) -> bool:
    """A subordinate clause not glued to the clause before it: it leads the one after it."""
    return clause.relation is not None and not clause.glued


def _order(clauses: list[Clause], language: Language) -> list[Clause]:
    """Put each subordinate clause where its action happens against its main clause's.

    A subordinate clause (with the clauses chained to it) leads its main clause when it
    comes first in its sentence ("After saving it, close Word"; Turkish always, the verb
    being last), else it follows the clause before it ("Close Word after saving it").
    The main clause of a leading one runs on over clauses joined by "and"
    ("Before leaving, close the apps and save my work").
    """
    out: list[Clause] = []
    i = 0
    while i < len(clauses):
        clause = clauses[i]
        if clause.relation is None or clause.chained or not clause.is_action:
            out.append(clause)
            i += 1
            continue
        j = i + 1
        while j < len(clauses) and clauses[j].chained:
            j += 1
        group = clauses[i:j]
        if j < len(clauses) and (language is Language.TR or not clause.glued or not out):
            k = j + 1
            while k < len(clauses) and _and_joined(clauses[k]):
                k += 1
            out.extend(_attach(group, clauses[j:k], clause.relation, leading=True))
            i = k
        elif out:
            out.extend(_attach(group, [out.pop()], clause.relation, leading=False))
            i = j
        else:  # alone: nothing to order it against
            out.extend(group)
            i = j
    return out


def _and_joined(clause: Clause) -> bool:
    return clause.relation is None and clause.markers == {Marker.CONJUNCTION}


def _attach(group: list[Clause], main: list[Clause], relation: str, *, leading: bool) -> list[Clause]:
    """The clauses of a subordinate group and its main clause(s), in the order they run."""
    if relation == Marker.AFTER:
        return group + main
    if relation == Marker.BEFORE:
        return main + group
    if relation == Marker.WHILE:
        first, second = (group, main) if leading else (main, group)
        second[0].parallel = True
        return first + second
    target = main[0] if leading else main[-1]  # WITHOUT: no step of its own
    target.merged.extend(Merged(REASON_NEGATED, clause) for clause in group)
    return main


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
