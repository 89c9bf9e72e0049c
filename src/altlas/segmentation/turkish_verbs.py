"""Inflected Turkish verb forms, generated from the stems in the lexicon.

A command uses a verb in one of a few shapes: imperative ("aç", "açın", "açınız"),
converb that chains it to the next action ("açıp", "açarak", "açınca", "açtıktan"),
or a request ("açar mısın", "açabilir misin", "açmanı istiyorum"). Each template
below is written in folded letters with placeholders for vowel harmony (H: i/u,
A: a/e), the d/t alternation (D) and the buffer y after a vowel (Y). Harmony is
applied leniently (every variant is accepted): typos and phone-typed text rarely
respect it, and no form generated this way collides with a common noun in a way
the clause-final rule (see classifier) does not already absorb.

Some converbs also say how their action is ordered against the next clause's (their
`link`): "açtıktan sonra" and "açınca" open first, "açarken" opens meanwhile,
"açmadan" is "without opening" (before "önce": "before opening"). `guess` tells a
verb the lexicon does not know by an ending only verbs take ("sulayıp").
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from altlas.plans.model import TaskType
from altlas.segmentation.lexicon import TR_STEMS
from altlas.segmentation.text import fold

__all__ = ["Link", "VerbForm", "VerbShape", "guess", "lookup"]


class VerbShape(StrEnum):
    IMPERATIVE = "imperative"
    CONVERB = "converb"  # chains this action to the next one: a clause boundary after it
    REQUEST = "request"


class Link(StrEnum):
    """How a converb orders its action against the next clause's (see `lexicon.Marker`)."""

    AFTER = "after"  # indirdikten (sonra), açınca: this action first
    WHILE = "while"  # indirirken: both at once
    WITHOUT = "without"  # kaydetmeden: not this action; before "önce": the next one first


@dataclass(frozen=True, slots=True)
class VerbForm:
    stem: str  # folded stem
    task_type: TaskType | None  # None for light verbs (et, al, ...) that need a compound
    shape: VerbShape
    link: Link | None = None  # converbs only
    nominal: bool = False  # infinitive-like requests (silmek, silmeni): never lead a clause


_TEMPLATES: dict[VerbShape, tuple[str, ...]] = {
    VerbShape.IMPERATIVE: ("", "YHn", "YHnHz", "sAnA", "YHver", "YHverHn", "YHvers"),
    VerbShape.CONVERB: ("YHp", "YArAk", "YHncA", "DHktAn", "DHgHndA", "Rken", "mAdAn"),
    VerbShape.REQUEST: (
        "YAbHlHr", "YAbHlHrmHsHn", "YAbHlHrmHsHnHz", "YAbHlHrsHn", "YAbHlHrsHnHz", "R", "RmHsHn",
        "RmHsHnHz", "mAk", "mAn", "mAnHz", "mAnH", "mAnHzH", "mAsHnH", "mAyH", "YAlHm", "mAlHsHn",
        "mAlHyHz", "YAcAksHn", "YAcAksHnHz", "mAnHzHrHcA",
    ),
}  # fmt: skip
_LINKS = {
    "YHncA": Link.AFTER, "DHktAn": Link.AFTER, "DHgHndA": Link.AFTER, "Rken": Link.WHILE,
    "mAdAn": Link.WITHOUT,
}  # fmt: skip

_VOWELS = frozenset("aeiou")
# Stems whose final t softens to d before a vowel: et -> edip, kaydet -> kaydedin.
_SOFTENING = frozenset({"et", "git", "kaydet"})
_CHOICES = {"H": "iu", "A": "ae", "D": "dt"}


def _expand(template: str) -> list[str]:
    slots = [_CHOICES.get(ch, ch) for ch in template]
    return ["".join(p) for p in itertools.product(*slots)] if slots else [""]


# The kinds of form a template makes: (shape, link, nominal), numbered so that a form's kind
# is a small int (hashing enums runs Python code: 50,000 forms notice it).
_KINDS: list[tuple[VerbShape, Link | None, bool]] = []


def _kind(shape: VerbShape, template: str) -> int:
    kind = (shape, _LINKS.get(template), shape is VerbShape.REQUEST and template.startswith("m"))
    if kind not in _KINDS:
        _KINDS.append(kind)
    return _KINDS.index(kind)


@functools.cache
def _suffixes(ends_in_vowel: bool) -> list[tuple[str, bool, int]]:
    """Every suffix for stems ending in a vowel or not: (suffix, starts with a vowel, kind).

    The same for all stems of a kind, so it is expanded once, not once per stem.
    """
    out: list[tuple[str, bool, int]] = []
    for shape, templates in _TEMPLATES.items():
        for template in templates:
            kind = _kind(shape, template)
            if template.startswith("R"):  # aorist: ara -> arar, aç -> açar / açır
                heads = ["r"] if ends_in_vowel else ["Ar", "Hr"]
                variants = [head + template[1:] for head in heads]
            else:
                variants = [template]
            for tpl in variants:
                tpl = tpl.replace("Y", "y" if ends_in_vowel else "")
                vowel_initial = tpl[:1] in ("H", "A")
                out.extend((suffix, vowel_initial, kind) for suffix in _expand(tpl))
    return out


def _forms_of(stem: str) -> Iterator[tuple[str, int]]:
    softened = stem[:-1] + "d" if stem in _SOFTENING else stem
    for suffix, vowel_initial, kind in _suffixes(stem[-1] in _VOWELS):
        yield (softened if vowel_initial else stem) + suffix, kind


# Generated forms that are common words first: Alman (German), etmen (factor), seçmen (voter).
_NOT_FORMS = frozenset({"alman", "etmen", "secmen", "yazman"})


def _build_table() -> dict[str, VerbForm]:
    table: dict[str, VerbForm] = {}
    for raw_stem, task_type in TR_STEMS.items():
        stem = fold(raw_stem)
        by_kind: dict[int, VerbForm] = {}  # one object per kind of a stem, shared by its forms
        for form, kind in _forms_of(stem):
            # A form two stems share keeps the first stem's meaning (lexicon order).
            if form not in table and form not in _NOT_FORMS:
                if kind not in by_kind:
                    by_kind[kind] = VerbForm(stem, task_type, *_KINDS[kind])
                table[form] = by_kind[kind]
    return table


_TABLE = _build_table()


def lookup(key: str) -> VerbForm | None:
    """The verb form a folded Turkish word is, or None when it is not a known verb."""
    return _TABLE.get(key)


# Endings that only verbs take, for verbs the lexicon does not know ("sulayıp", "bekledikten",
# "uyutabilir"): (folded ending, shape, link). Each is long enough that no common noun ends so;
# not -madan, which ends "cumadan" (from Friday) and every -ma noun in the ablative.
_GUESSES: tuple[tuple[str, VerbShape, Link | None], ...] = (
    *((e, VerbShape.CONVERB, Link.AFTER) for e in _expand("DHktAn")),
    *((e, VerbShape.CONVERB, None) for e in _expand("yHp")),
    *((e, VerbShape.CONVERB, Link.WHILE) for e in ("arken", "erken", "irken", "urken")),
    *((e, VerbShape.REQUEST, None) for e in _expand("AbHlHr")),
)  # fmt: skip
_ENDINGS = tuple(ending for ending, _, _ in _GUESSES)  # one endswith() call rejects most words
_NOT_VERBS = frozenset({"erken", "ayip", "sahip", "garip"})


def guess(key: str) -> VerbForm | None:
    """A verb the lexicon does not know, told by an ending only verbs take; None if unsure.

    Its task type is None: an action, but not one of the 20 types.
    """
    if len(key) < 6 or not key.endswith(_ENDINGS) or key in _NOT_VERBS or not key.isalpha():
        return None
    for ending, shape, link in _GUESSES:
        if key.endswith(ending):
            return VerbForm(key[: -len(ending)], None, shape, link)
    return None
