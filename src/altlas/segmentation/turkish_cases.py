"""Turkish case endings and the words around noun phrases, on folded keys (see `text.fold`).

Turkish marks a noun's role with a suffix: accusative "raporu" (the definite object),
dative "Ayşe'ye", "ekibe", "klasörüne" (recipient, destination), locative "Slack'te",
ablative "Drive'dan", instrumental "Ali'yle". After a proper name the suffix follows an
apostrophe and is read exactly; fused into a common noun it is guessed from the ending.
A guess is *strong* when the ending leaves little doubt ("dosyaya": y after a vowel;
"klasörüne": possessive + dative) and *weak* when a word could also just end that way
("ekibe" is a dative, "belge" is not; "raporu" an accusative, "bilgi" not). Folding has
merged ı/i, ü/u and ö/o, so each ending is written once.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import lru_cache

__all__ = [
    "POST_TITLES",
    "TR_DETERMINERS",
    "TR_POLITENESS",
    "Case",
    "apostrophe_cut",
    "case_of",
    "case_suffix_cut",
    "is_question_particle",
]


class Case(Enum):
    NONE = "none"
    ACC = "accusative"
    DAT = "dative"
    LOC = "locative"
    ABL = "ablative"
    INS = "instrumental"


_VOWELS = frozenset("aeiou")
_VOICELESS = frozenset("pctksfh")  # ç and ş fold to c and s

# Whole suffixes after an apostrophe (folded), by case.
_APOSTROPHE_SUFFIXES: dict[str, Case] = {
    **dict.fromkeys("i u yi yu ni nu lari leri sini suni ini unu".split(), Case.ACC),
    **dict.fromkeys("a e ya ye na ne lara lere ina ine una une sina sine".split(), Case.DAT),
    **dict.fromkeys("da de ta te nda nde larda lerde inda inde unda unde".split(), Case.LOC),
    **dict.fromkeys("dan den tan ten ndan nden lardan lerden".split(), Case.ABL),
    **dict.fromkeys("la le yla yle".split(), Case.INS),
}

# Words whose ending looks like a case but is part of the word: nouns and adjectives that
# end in a consonant + a/e or i/u, adverbs, and time words.
_NOT_CASE = frozenset(
    # nouns ending like a dative
    "masa liste sayfa belge fatura sifre posta e-posta eposta kamera tarife ajanda kasa para oda "
    "hata ekstre parola lira sira lamba bina sahne sube firma banka borsa piyasa tema sema pizza "
    "karne cumle kelime bolge cizelge dilekce makine hazine dakika saniye hafta gece ogle orta "
    "ekstra kahve fotokopi kopya medya klavye odeme arama tarama deneme "
    # nouns and adjectives ending like an accusative
    "yeni eski iki yedi alti harici dahili bilgi kutu menu konu sunucu ordu dizi taksi hobi parti "
    "kirmizi mavi sari gri turuncu ikinci ucuncu birinci dorduncu besinci sonuncu ozgu toplanti "
    "musteri komsu ordu kopru ortu utu sanki yazici kullanici yonetici gelistirici tasarimci "
    "muhasebeci okuyucu tarayici oynatici surucu "
    # adverbs, postpositions and particles
    "sonra once daha yine gene bile ile gore hele acaba ayrica sadece ozellikle birlikte yeniden "
    "tekrar beraber simdi artik hemen yarin bugun".split()
)
_RELATIVE = re.compile(r"(?:daki|deki|taki|teki|yarinki|bugunku|dunku|aksamki|sabahki|geceki|haftaki)$")
_ABLATIVE = ("dan", "den", "tan", "ten")

# Titles written after a name ("Mehmet Bey", "Ayşe Hanım", "Ahmet Hoca"): the word before
# one is part of the name, whatever its ending.
POST_TITLES = frozenset("bey beyefendi hanim hanimefendi hoca hocam usta abi abla efendi pasa".split())
# Determiners (and "sevgili", dear, before a name), folded; "şu" folds to "su" (water), so it
# is told by its written form.
TR_DETERMINERS = frozenset({"bu", "o", "bir", "bi", "sevgili"})
TR_POLITENESS = frozenset(
    "lutfen ltf ltfn hey tesekkurler sagol sagolun hadi haydi bakalim acaba zahmet mumkunse bi".split()
)
_QUESTION = re.compile(r"m[iu](?:s[iu]n(?:[iu]z)?|y[iu]z|y[iu]m|d[iu]r|yd[iu](?:n|k|m)?)?")


def is_question_particle(key: str) -> bool:
    """mı, mi, mu, mü and their person endings (mısın, misiniz, muyuz, ...)."""
    return key[:1] == "m" and len(key) <= 8 and _QUESTION.fullmatch(key) is not None


def apostrophe_cut(key: str) -> int | None:
    """Where a suffix after an apostrophe starts ("Drive'a" -> 5), if the word has one."""
    cut = key.find("'", 1)
    return cut if 0 < cut < len(key) - 1 else None


def case_suffix_cut(key: str) -> int | None:
    """Where a case ending after an apostrophe starts ("Drive'a" -> 5); None for a plural
    ("PDF'leri" names several PDFs) or any other suffix."""
    cut = apostrophe_cut(key)
    if cut is None:
        return None
    suffix = key[cut + 1 :]
    return cut if suffix in _APOSTROPHE_SUFFIXES and not suffix.startswith(("lar", "ler")) else None


@lru_cache(maxsize=16_384)
def case_of(key: str) -> tuple[Case, bool]:
    """(case, strong) of a folded word; (Case.NONE, False) when it shows none."""
    cut = apostrophe_cut(key)
    if cut is not None:
        case = _APOSTROPHE_SUFFIXES.get(key[cut + 1 :], Case.NONE)
        return case, case is not Case.NONE
    if len(key) < 4 or key in _NOT_CASE or not key[-1].isalpha():
        return Case.NONE, False
    return _fused_case(key)


def _fused_case(key: str) -> tuple[Case, bool]:
    if _RELATIVE.search(key):
        return Case.NONE, False
    if key.endswith(_ABLATIVE) and len(key) > 4:
        return Case.ABL, True
    if key.endswith(("lara", "lere")):
        return Case.DAT, True
    if key.endswith(("lari", "leri")):
        return Case.ACC, True
    if key[-3:] in ("yla", "yle") and key[-4] in _VOWELS:
        return Case.INS, True  # e-postayla, Ali'yle is read above
    last, before, third = key[-1], key[-2], key[-3]
    ending = key[-2:]
    if ending in ("da", "de") or (ending in ("ta", "te") and third in _VOICELESS):
        return Case.LOC, True
    if before == "y":
        if third not in _VOWELS:
            return Case.NONE, False  # dosya, medya: the y belongs to the word
        return (Case.DAT, True) if last in "ae" else (Case.ACC, True) if last in "iu" else (Case.NONE, False)
    if before == "n" and third in _VOWELS:
        if last in "ae" and third in "iu":
            return Case.DAT, True  # klasörüne, kanalına: possessive + dative
        if last in "iu":
            return Case.ACC, True  # klasörünü, dosyasını
    if before in _VOWELS:
        return Case.NONE, False
    if last in "ae":
        if before == "m" and (third not in _VOWELS or key.endswith(("lama", "leme"))):
            return Case.NONE, False  # sözleşme, pazarlama, güncelleme: verbal nouns
        return Case.DAT, False  # ekibe, kanala, belleğe, anneme
    if last in "iu":
        if before == "l":
            return Case.NONE, False  # önemli, şifreli: adjectives in -li
        return Case.ACC, False  # raporu, mesajı, linki
    return Case.NONE, False
