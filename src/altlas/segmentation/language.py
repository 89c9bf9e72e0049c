"""Is a command English or Turkish?

Turkish letters alone decide nothing ("Play Tarkan's şarkı list" is English, and
phone-typed Turkish has none), so the detector weighs several kinds of evidence:
function words, known verbs in the place each language puts them (English first,
Turkish last), case suffixes after an apostrophe (Firefox'u vs Ali's), common
Turkish plural and case endings, and only then the letters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from altlas.plans.model import Language
from altlas.segmentation import turkish_verbs
from altlas.segmentation.lexicon import EN_VERBS
from altlas.segmentation.text import Token, tokenize

__all__ = ["LanguageGuess", "detect_language"]

_TR_WORDS = frozenset(
    "ve bir bu su o icin ile da de sonra once ardindan lutfen tum butun olarak gibi en cok daha her hem "
    "ama ayrica gore kadar yeni eski bana beni benim onu bunu sunu ne nasil saat yarin bugun aksam sabah "
    "dosya dosyayi dosyalari klasor klasoru belge belgeyi hava durumu icinde uzerinde altinda son ilk "
    "iki uc dort bes on yuz sunucu ekran goruntusu resmi resim bilgisayar masaustu masaustundeki".split()
)
_EN_WORDS = frozenset(
    "the a an and to for of in on with then it is this that my me please from into all at by as be "
    "are after also your new file files folder document report email about up out them its our "
    "their latest current every tomorrow today tonight next last first then".split()
)
_EN_CONTRACTIONS = ("'s", "'t", "'re", "'ll", "'ve", "'d", "'m")
_TR_ENDING = re.compile(
    r"\w{2,}(?:lari|leri|lar|ler|ini|unu|ları|dan|den|tan|ten|nin|nun|inin|unun|daki|deki|taki|teki|"
    r"sini|sunu|yi|yu|ye|ya|na|ne|ina|ine|una|une|lik|luk|ca|ce)$"
)
_TURKISH_LETTERS = frozenset("çğıöşüÇĞİÖŞÜ")


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    language: Language
    confidence: float  # 0.5 (a coin toss) to 1.0
    scores: dict[str, float]


def detect_language(command: str, tokens: list[Token] | None = None) -> LanguageGuess:
    """Guess whether `command` is English or Turkish from several kinds of evidence."""
    words = [t for t in (tokens if tokens is not None else tokenize(command)) if t.is_word]
    en, tr = _word_scores(words)
    letters = sum(1 for c in command if c in _TURKISH_LETTERS)
    tr += min(letters, 4) * 0.75
    if tr == en:
        language = Language.TR if letters else Language.EN
    else:
        language = Language.TR if tr > en else Language.EN
    total = en + tr
    confidence = 0.5 if total == 0 else 0.5 + 0.5 * abs(tr - en) / total
    return LanguageGuess(language, round(confidence, 3), {"en": en, "tr": tr})


def _word_scores(words: list[Token]) -> tuple[float, float]:
    en = tr = 0.0
    last_word = len(words) - 1
    for index, token in enumerate(words):
        key = token.key
        if key in _EN_WORDS:
            en += 1.0
        if key in _TR_WORDS:
            tr += 1.0
        if key in EN_VERBS:
            en += 2.0 if index == 0 else 0.75
        verb = turkish_verbs.lookup(key)
        if verb is not None:
            tr += 2.0 if index == last_word or verb.shape == "converb" else 0.5
        if "'" in key:
            suffix = key[key.index("'") :]
            if suffix in _EN_CONTRACTIONS:
                en += 1.5
            elif len(suffix) > 1:
                tr += 2.0
        elif _TR_ENDING.fullmatch(key) and key not in _EN_WORDS and key not in EN_VERBS:
            tr += 0.5
        if key.endswith(("ing", "tion", "ed", "ly")) and len(key) > 4:
            en += 0.5
    return en, tr
