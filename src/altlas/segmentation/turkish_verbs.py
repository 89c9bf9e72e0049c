"""Inflected Turkish verb forms, generated from the stems in the lexicon.

A command uses a verb in one of a few shapes: imperative ("aç", "açın", "açınız"),
converb that chains it to the next action ("açıp", "açarak", "açınca", "açtıktan"),
or a request ("açar mısın", "açabilir misin", "açmanı istiyorum"). Each template
below is written in folded letters with placeholders for vowel harmony (H: i/u,
A: a/e), the d/t alternation (D) and the buffer y after a vowel (Y). Harmony is
applied leniently (every variant is accepted): typos and phone-typed text rarely
respect it, and no form generated this way collides with a common noun in a way
the clause-final rule (see classifier) does not already absorb.
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

__all__ = ["VerbForm", "VerbShape", "lookup"]


class VerbShape(StrEnum):
    IMPERATIVE = "imperative"
    CONVERB = "converb"  # chains this action to the next one: a clause boundary after it
    REQUEST = "request"


@dataclass(frozen=True, slots=True)
class VerbForm:
    stem: str  # folded stem
    task_type: TaskType | None  # None for light verbs (et, al, ...) that need a compound
    shape: VerbShape


_TEMPLATES: dict[VerbShape, tuple[str, ...]] = {
    VerbShape.IMPERATIVE: ("", "YHn", "YHnHz", "sAnA", "YHver", "YHverHn", "YHvers"),
    VerbShape.CONVERB: ("YHp", "YArAk", "YHncA", "DHktAn", "DHgHndA"),
    VerbShape.REQUEST: (
        "YAbHlHr", "YAbHlHrmHsHn", "YAbHlHrmHsHnHz", "YAbHlHrsHn", "YAbHlHrsHnHz", "R", "RmHsHn",
        "RmHsHnHz", "mAk", "mAnH", "mAnHzH", "mAsHnH", "mAyH", "YAlHm", "mAlHsHn", "mAlHyHz",
        "YAcAksHn", "YAcAksHnHz", "mAnHzHrHcA",
    ),
}  # fmt: skip

_VOWELS = frozenset("aeiou")
# Stems whose final t softens to d before a vowel: et -> edip, kaydet -> kaydedin.
_SOFTENING = frozenset({"et", "git", "kaydet"})
_CHOICES = {"H": "iu", "A": "ae", "D": "dt"}


def _expand(template: str) -> list[str]:
    slots = [_CHOICES.get(ch, ch) for ch in template]
    return ["".join(p) for p in itertools.product(*slots)] if slots else [""]


@functools.cache
def _suffixes(ends_in_vowel: bool) -> list[tuple[str, bool, VerbShape]]:
    """Every suffix for stems ending in a vowel or not: (suffix, starts with a vowel, shape).

    The same for all stems of a kind, so it is expanded once, not once per stem.
    """
    out: list[tuple[str, bool, VerbShape]] = []
    for shape, templates in _TEMPLATES.items():
        for template in templates:
            if template.startswith("R"):  # aorist: ara -> arar, aç -> açar / açır
                heads = ["r"] if ends_in_vowel else ["Ar", "Hr"]
                variants = [head + template[1:] for head in heads]
            else:
                variants = [template]
            for tpl in variants:
                tpl = tpl.replace("Y", "y" if ends_in_vowel else "")
                vowel_initial = tpl[:1] in ("H", "A")
                out.extend((suffix, vowel_initial, shape) for suffix in _expand(tpl))
    return out


def _forms_of(stem: str) -> Iterator[tuple[str, VerbShape]]:
    softened = stem[:-1] + "d" if stem in _SOFTENING else stem
    for suffix, vowel_initial, shape in _suffixes(stem[-1] in _VOWELS):
        yield (softened if vowel_initial else stem) + suffix, shape


def _build_table() -> dict[str, VerbForm]:
    table: dict[str, VerbForm] = {}
    for raw_stem, task_type in TR_STEMS.items():
        stem = fold(raw_stem)
        by_shape = {shape: VerbForm(stem, task_type, shape) for shape in VerbShape}  # shared, not per form
        for form, shape in _forms_of(stem):
            # A form two stems share keeps the first stem's meaning (lexicon order).
            if form not in table:
                table[form] = by_shape[shape]
    return table


_TABLE = _build_table()


def lookup(key: str) -> VerbForm | None:
    """The verb form a folded Turkish word is, or None when it is not a known verb."""
    return _TABLE.get(key)
