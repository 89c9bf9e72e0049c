"""Inflected English verb forms, generated from the base forms in the lexicon.

An imperative uses the base form ("save the file"), but a subordinate clause or a
polite frame takes another: a gerund ("after saving it", "would you mind saving
it"), a participle ("once you've saved it", "once saved") or the third person
("after it downloads"). Each form maps back to its base, so the lexicon lists a
verb once. Spelling rules are applied leniently (both "opening" and "openning",
"planing" and "planning" are accepted): a wrong spelling cannot collide with a
real word in the places these forms are looked for.
"""

from __future__ import annotations

from altlas.segmentation.lexicon import EN_OTHER_VERBS, EN_PHRASES, EN_VERBS

__all__ = ["base_of_inflected", "is_unknown_gerund"]

_VOWELS = frozenset("aeiou")
# Past and participle forms that no rule makes.
_IRREGULAR: dict[str, tuple[str, ...]] = {
    "send": ("sent",), "make": ("made",), "write": ("wrote", "written"), "find": ("found",),
    "build": ("built",), "run": ("ran",), "take": ("took", "taken"), "get": ("got", "gotten"),
    "give": ("gave", "given"), "keep": ("kept",), "buy": ("bought",), "pay": ("paid",),
    "tell": ("told",), "leave": ("left",), "drive": ("drove", "driven"), "bring": ("brought",),
    "hide": ("hid", "hidden"), "seek": ("sought",), "shut": ("shut",), "set": ("set",),
    "put": ("put",), "read": ("read",), "quit": ("quit",), "go": ("went", "gone"),
    "do": ("did", "done"), "draw": ("drew", "drawn"), "begin": ("began", "begun"),
    "fire": ("fired",), "back": ("backed",), "wake": ("woke", "woken"), "sum": ("summed",),
    "upload": ("uploaded",), "download": ("downloaded",), "dial": ("dialed", "dialled"),
}  # fmt: skip


def _cvc(base: str) -> bool:
    """Ends consonant-vowel-consonant: the last letter may double (run -> running)."""
    return (
        len(base) >= 3
        and base[-1] not in _VOWELS | {"w", "x", "y"}
        and base[-2] in _VOWELS
        and base[-3] not in _VOWELS
    )


def _inflections(base: str) -> set[str]:
    stems = {base}
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        stems = {base[:-1]}  # save -> saving, saved
    elif _cvc(base):
        stems.add(base + base[-1])  # stop -> stopping, stopped (open -> opening as well)
    forms = {stem + "ing" for stem in stems}
    if base.endswith("ie"):
        forms.add(base[:-2] + "ying")
    if base.endswith("y") and base[-2:-1] not in _VOWELS:
        forms |= {base[:-1] + "ied", base[:-1] + "ies"}  # copy -> copied, copies
    else:
        forms |= {stem + ("d" if stem.endswith("e") else "ed") for stem in stems}
        forms.add(base + "d" if base.endswith("e") else base + "ed")
        forms.add(base + ("es" if base.endswith(("s", "x", "z", "ch", "sh", "o")) else "s"))
    forms.update(_IRREGULAR.get(base, ()))
    return forms


def _build_table() -> dict[str, str]:
    bases = [*EN_VERBS, *sorted(EN_OTHER_VERBS), *(phrase[0] for phrase in EN_PHRASES)]
    table: dict[str, str] = {}
    for base in bases:
        for form in _inflections(base):
            if form not in table:  # the first base keeps a shared form (lexicon order)
                table[form] = base
    return table


_TABLE = _build_table()

# Words ending in -ing that are rarely gerunds after "after" or "before".
_ING_NOUNS = frozenset(
    "morning evening everything nothing something anything thing things spring string king ring "
    "ceiling during wedding lightning pudding sibling darling".split()
)


def base_of_inflected(key: str) -> str | None:
    """The base form of a known verb's gerund, participle or third person, else None."""
    return _TABLE.get(key)


def is_unknown_gerund(key: str) -> bool:
    """A word that looks like the gerund of a verb the lexicon does not know ("watering")."""
    return len(key) >= 6 and key.endswith("ing") and key.isalpha() and key not in _ING_NOUNS
