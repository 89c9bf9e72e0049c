"""Find the action of a clause and decide its task type.

English puts the imperative verb first ("Open Firefox"), Turkish last ("Firefox'u
aç"), so each language looks for its verb where it belongs, skipping politeness
("please", "lütfen") and, in English, words used as nouns ("the download folder").
Words match whole words and Turkish inflected forms, never raw substrings, so
"ara" is not found in "olarak" nor "browse" in "browser".

Three places hold a verb in another form or position:
- an English subordinate clause or polite frame: "after saving it", "once you've
  saved it", "would you mind saving it" (a gerund or participle, see english_verbs);
- a Turkish clause in inverted order, verb first: "Sil şu dosyayı" (imperative only);
- a verb the lexicon does not know: an English word before its object at the head of
  a clause ("water the plants"), a Turkish word with an ending only verbs take
  ("sulayıp", "uyutur musun", "bitkileri sula"). It is an action, typed execute with
  confidence CONFIDENCE_UNKNOWN, so that no clause holding a verb is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from altlas.plans.model import Language, TaskType
from altlas.segmentation import turkish_verbs
from altlas.segmentation.english_verbs import base_of_inflected, is_unknown_gerund
from altlas.segmentation.lexicon import (
    EN_BLOCKERS,
    EN_FILLERS,
    EN_OTHER_VERBS,
    EN_PHRASES,
    EN_VERBS,
    FORMATS,
    LANGUAGE_NAMES,
    TR_COMPOUNDS,
    TR_FILLERS,
    TR_LIGHT_VERBS,
)
from altlas.segmentation.phrases import PhraseSet
from altlas.segmentation.text import Token

__all__ = ["Action", "find_action", "mentions_format", "mentions_language"]

# Confidence by where the verb was found.
CONFIDENCE_HEAD = 0.95  # where the language puts its verb
CONFIDENCE_VERB_FIRST = 0.9  # a Turkish verb leading its clause: "Sil şu dosyayı"
CONFIDENCE_ELSEWHERE = 0.8
CONFIDENCE_DEFAULTED = 0.6  # an ambiguous verb whose object did not decide it
CONFIDENCE_UNKNOWN = 0.4  # no known action: execute, at most 0.5 by contract

_AMBIGUOUS_CONVERT = frozenset({"convert", "cevir", "turn"})
_FILE_WORDS = (
    "dosya", "belge", "resim", "gorsel", "fotograf", "foto", "video", "tablo", "sunum", "goruntu",
    "file", "image", "photo", "picture", "video", "document", "spreadsheet", "audio", "sound",
)  # fmt: skip


# What one installs rather than uploads: "güncellemeyi yükle", "programı yükle".
_SOFTWARE_WORDS = (
    "guncelleme", "program", "uygulama", "surucu", "yazilim", "eklenti", "uzanti", "yama", "kurulum",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Action:
    task_type: TaskType
    confidence: float
    start: int  # index of the first word of the verb (phrase) in the clause's words
    end: int  # one past its last word
    at_head: bool  # found where the language puts its verb: the clause is an action
    inflected: bool = False  # an English gerund or participle: "saving", "saved"


def find_action(
    words: list[Token], language: Language, *, subordinate: bool = False, gerund: bool = False,
    initial: bool = True,
) -> Action | None:  # fmt: skip
    """The action of a clause (its words only, no punctuation), or None if it has none.

    subordinate: the clause follows a subordinator ("after", "before", ...), so its
    English verb may be a gerund or participle, after a subject ("after you save it").
    gerund: an English gerund may lead the clause ("... and sending it to Ali" after
    "would you mind translating it"). initial: the clause starts a sentence, where a
    capital letter says nothing about a word being a name.
    """
    if not words:
        return None
    if language is Language.EN:
        action = _find_en_subordinate(words) if subordinate else _find_en(words, gerund, initial)
    else:
        action = _find_tr(words)
    if action is None:
        return None
    return _disambiguate(action, words)


_EN_FILLER_SET = PhraseSet(EN_FILLERS)
_DETERMINERS = frozenset("a an the my your our their his her its this that these those some".split())


_PRONOUNS = frozenset("it them this that these those everything all me".split())


def _matches(words: list[Token], start: int, phrase: tuple[str, ...]) -> int:
    """End index if `phrase` matches at `start`, else -1.

    "*" matches an optional determiner; "~" an optional pronoun, so that particle verbs
    match with their object inside ("back them up", "shut it down").
    """
    i = start
    for part in phrase:
        if part in ("*", "~"):
            optional = _DETERMINERS if part == "*" else _PRONOUNS
            if i < len(words) and words[i].key in optional:
                i += 1
            continue
        if i >= len(words) or words[i].key != part:
            return -1
        i += 1
    return i


_PHRASES_BY_FIRST: dict[str, list[tuple[tuple[str, ...], TaskType]]] = {}
for _phrase, _type in sorted(EN_PHRASES.items(), key=lambda kv: -len(kv[0])):
    _PHRASES_BY_FIRST.setdefault(_phrase[0], []).append((_phrase, _type))


def _en_verb_at(words: list[Token], i: int, *, inflected: bool = False) -> tuple[TaskType | None, int] | None:
    """(type, end) of the verb or verb phrase at words[i], or None.

    inflected: the first word is a gerund, participle or third person ("backing it up"),
    and may be an action none of the 20 types names (type None: "after muting it").
    """
    key = words[i].key
    if "-" in key and key not in EN_VERBS:  # "double-check", "re-run": the verb is the last part
        key = key.rsplit("-", 1)[1]
    base = base_of_inflected(key) if inflected else key
    if base is None:
        return None
    for phrase, task_type in _PHRASES_BY_FIRST.get(base, ()):
        end = _matches(words, i + 1, phrase[1:])
        if end > 0:
            return task_type, end
    verb_type = EN_VERBS.get(base)
    if verb_type is not None or (inflected and base in EN_OTHER_VERBS):
        return verb_type, i + 1
    return None


def _en_action(found: tuple[TaskType | None, int], start: int, confidence: float, inflected: bool) -> Action:
    task_type, end = found
    if task_type is None:
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, start, end, True, inflected)
    return Action(task_type, confidence, start, end, True, inflected)


def _skip_en_fillers(words: list[Token]) -> tuple[int, bool]:
    """(index of the first word after politeness, whether a gerund frame was among it)."""
    head, frame = 0, False
    while head < len(words) and (n := _EN_FILLER_SET.length_at(words, head)):
        head += n
        frame = frame or words[head - 1].key in _GERUND_FRAMES
    return head, frame


_GERUND_FRAMES = frozenset({"mind", "about"})  # "would you mind saving it", "how about playing jazz"
# Words a subordinate clause may put before the verb of an action asked for: "after you have
# saved it", "once done saving", "after being copied". Any other subject ("after it loads",
# "before Ali arrives", "once the download finishes") makes the clause an event, no action.
_EN_SUBJECTS = frozenset(
    "you u we you've we've you're we're you'll have has having had are is be been being done "
    "finished finish completed complete".split()
)


def _find_en_subordinate(words: list[Token]) -> Action | None:
    """The verb of "after saving it", "once you have saved it", "before sending it"."""
    head = 0
    while head < len(words) and words[head].key in _EN_SUBJECTS:
        head += 1
    if head >= len(words):
        return None
    for inflected in (True, False):
        found = _en_verb_at(words, head, inflected=inflected)
        if found is not None:
            return _en_action(found, head, CONFIDENCE_HEAD, inflected)
    key = words[head].key
    if key in EN_OTHER_VERBS or _looks_like_en_verb(words, head, initial=False):  # "before you mute it"
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, head, head + 1, True)
    if is_unknown_gerund(key):  # "after watering the plants"
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, head, head + 1, True, True)
    return None


def _find_en(words: list[Token], gerund: bool = False, initial: bool = True) -> Action | None:
    head, frame = _skip_en_fillers(words)
    if (gerund or frame) and head < len(words):
        found = _en_verb_at(words, head, inflected=True)
        if found is not None:
            return _en_action(found, head, CONFIDENCE_HEAD, True)
    for i in range(head, len(words)):
        if i > head and words[i - 1].key in EN_BLOCKERS:
            continue  # "the search results", "for download": a noun here
        found = _en_verb_at(words, i)
        if found is not None:
            return _en_action(found, i, CONFIDENCE_HEAD if i == head else CONFIDENCE_ELSEWHERE, False)
    if head < len(words) and (words[head].key in EN_OTHER_VERBS or _looks_like_en_verb(words, head, initial)):
        # An action, but none of the 20 types: "turn up the volume", "water the plants".
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, head, head + 1, True)
    return None


# Words that lead a clause without being its verb: "and the report", "and from Paris".
_EN_NOT_VERBS = frozenset(
    "how what where when why which who whom whose both either neither all only even also just not "
    "no yes so too very is are was were be been am do does did have has had will would can could "
    "should shall may might must to from into onto with without of for in on at by about like near "
    "than as via per through across over under between among around after before since until till "
    "during within upon off out up down away back there here today tomorrow tonight yesterday now "
    "then next last first second third please thanks thank i you we they he she it me him her us "
    "them my your our their his its this that these those a an the some any every each more most "
    "less much many few several other another such same new old big small one two three".split()
)
_EN_OBJECT_STARTS = frozenset(
    "the a an my your our their his her its this that these those some every all any it them me "
    "him us everything".split()
)
_EN_PARTICLES = frozenset("up down out off on in over away back".split())


def _looks_like_en_verb(words: list[Token], head: int, initial: bool) -> bool:
    """A word the lexicon does not know, used as an imperative: it leads the clause and its
    object follows ("water the plants", "tidy up my desktop"). Names, plurals, adverbs and
    function words are not taken."""
    word = words[head]
    key = word.key
    if len(key) < 3 or not word.text.replace("-", "").isalpha() or key in _EN_NOT_VERBS:
        return False
    if word.text[0].isupper() and not initial:
        return False
    participle = key.endswith("ed") and not key.endswith("eed")
    if participle or key.endswith("ly") or (key.endswith("ing") and len(key) > 5):
        return False  # a participle, adverb or gerund ("feed" and "ping" are verbs)
    if key.endswith("s") and not key.endswith("ss"):  # a plural noun far more often than a verb
        return False
    after = head + 1
    if after < len(words) and words[after].key in _EN_PARTICLES:
        after += 1
    return after < len(words) and words[after].key in _EN_OBJECT_STARTS


def _last_content_index(words: list[Token]) -> int:
    """Index of the last word that is not politeness or a question particle."""
    end = len(words)
    while end > 0 and words[end - 1].key in _TR_SKIPPED_LAST:
        end -= 1
    return end - 1


_TR_QUESTION = frozenset("misin musun misiniz musunuz".split())
_TR_PARTICLES = frozenset(
    "mi mu misin musun misiniz musunuz miyiz lutfen ltfn ltf hemen simdi acil acilen derhal bakalim "
    "hadi tesekkurler sagol acaba istiyorum isterim istiyoruz rica ederim ediyorum lazim gerek "
    "gerekiyor unutma unutmayin unutmayiniz".split()
)
_TR_SKIPPED_LAST = _TR_PARTICLES | {f[0] for f in TR_FILLERS if len(f) == 1}


def _find_tr(words: list[Token]) -> Action | None:
    last = _last_content_index(words)
    if last < 0:
        return None
    verb = turkish_verbs.lookup(words[last].key)
    if verb is not None and not (verb.nominal and last == len(words) - 1):
        return _tr_action(words, last, verb, at_head=True)
    # A verbal noun last ("Yükle bu güncellemeyi": the update) is the verb only with no verb first.
    leading = _tr_leading_verb(words, last)
    if leading is not None:
        return leading
    if verb is not None:
        return _tr_action(words, last, verb, at_head=True)
    if _tr_unknown_verb(words, last):
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, last, last + 1, True)
    # No verb at the end: take the last verb form anywhere, as a weaker guess.
    for i in range(last - 1, -1, -1):
        verb = turkish_verbs.lookup(words[i].key)
        if verb is not None and verb.task_type is not None:
            return _tr_action(words, i, verb, at_head=False)
    return None


_TR_LEAD_FILLERS = frozenset("lutfen ltfen ltf hemen simdi hadi acaba derhal hizlica zahmet".split())
# Pronouns and demonstratives that start the object of a verb placed first: "Sil şu dosyayı".
_TR_OBJECT_STARTS = frozenset(
    "su bu o sunu bunu onu sunlari bunlari onlari hepsini tumunu butun tum her en bir birkac".split()
)
# Stems that are also common nouns or adjectives (yaz: summer, ara: interval, kur: exchange
# rate): first in a clause they are taken as verbs only before a clear object.
_TR_NOUN_STEMS = frozenset("yaz ara kur koy gec yak cik gir git oku sor cal tara".split())


def _tr_leading_verb(words: list[Token], last: int) -> Action | None:
    """A verb placed first, as in speech ("Sil şu dosyayı", "Açar mısın Chrome'u"): an
    imperative or a question-request, never a light verb, an infinitive or a converb."""
    first = 0
    while first < last and words[first].key in _TR_LEAD_FILLERS:
        first += 1
    if first >= last:
        return None
    verb = turkish_verbs.lookup(words[first].key)
    if verb is None or verb.nominal or verb.stem in TR_LIGHT_VERBS:
        return None
    following = words[first + 1]
    if verb.shape is turkish_verbs.VerbShape.REQUEST:
        if following.key not in _TR_QUESTION and "abil" not in words[first].key:
            return None
    elif verb.shape is not turkish_verbs.VerbShape.IMPERATIVE:
        return None
    if verb.stem in _TR_NOUN_STEMS and following.key not in _TR_OBJECT_STARTS and "'" not in following.key:
        return None
    if verb.task_type is None:
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, first, first + 1, True)
    return Action(verb.task_type, CONFIDENCE_VERB_FIRST, first, first + 1, True)


# Endings of the accusative object a bare verb follows: "bitkileri sula", "kediyi besle".
_TR_ACCUSATIVE_ENDS = ("i", "u", "'i", "'u", "'yi", "'yu", "'ni", "'nu")
# Causative endings (karart, kısalt, küçült, söndür): verbs, when long enough.
_TR_CAUSATIVE_ENDS = ("art", "ert", "alt", "elt", "ult", "ilt", "dir", "dur", "tir", "tur")
# Words ending in -la / -le that are no verbs.
_TR_NOT_LA_VERBS = frozenset(
    "ile bile aile cumle soyle boyle oyle hala kale lale sila mahalle tabela kola yayla hele sahile".split()
)


def _tr_unknown_verb(words: list[Token], last: int) -> bool:
    """A clause-final verb the lexicon does not know: a form only verbs take ("sulayıp",
    "uyutur musun"), or a -la/-le or causative verb after its object ("bitkileri sula",
    "ışıkları karart")."""
    word = words[last]
    key = word.key
    following = words[last + 1].key if last + 1 < len(words) else ""
    if turkish_verbs.guess(key) is not None:
        return True
    if not key.isalpha() or not word.text.islower():
        return False
    if following in _TR_QUESTION and len(key) >= 4:  # "sular mısın"
        return True
    if last == 0 or len(words[last - 1].key) < 4 or not words[last - 1].key.endswith(_TR_ACCUSATIVE_ENDS):
        return False
    denominal = len(key) >= 4 and key.endswith(("la", "le")) and key not in _TR_NOT_LA_VERBS
    return denominal or (len(key) >= 6 and key.endswith(_TR_CAUSATIVE_ENDS))


def _tr_action(words: list[Token], i: int, verb: turkish_verbs.VerbForm, *, at_head: bool) -> Action:
    compound = _tr_compound(words, i, verb)
    if compound is not None:
        task_type, start = compound
        return Action(task_type, CONFIDENCE_HEAD if at_head else CONFIDENCE_ELSEWHERE, start, i + 1, at_head)
    if verb.task_type is None:  # a light verb (et, al) with no known noun: some action
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, i, i + 1, at_head)
    return Action(verb.task_type, CONFIDENCE_HEAD if at_head else CONFIDENCE_ELSEWHERE, i, i + 1, at_head)


def _tr_compound(words: list[Token], i: int, verb: turkish_verbs.VerbForm) -> tuple[TaskType, int] | None:
    for _, nouns, task_type in _compounds_for(verb.stem, words[i].key):
        start = i - len(nouns)
        if start >= 0 and all(words[start + k].key.startswith(noun) for k, noun in enumerate(nouns)):
            return task_type, start
    if verb.task_type is None:
        # A light verb may sit apart from its noun: "adını sunum.pptx olarak değiştir".
        for _, nouns, task_type in _COMPOUNDS_BY_VERB.get(verb.stem, ()):
            if len(nouns) == 1:
                for j in range(i - 2, -1, -1):
                    if words[j].key.startswith(nouns[0]):
                        return task_type, i
    return None


def _compounds_for(stem: str, key: str) -> list[tuple[int, tuple[str, ...], TaskType]]:
    """Compounds whose verb is `stem` or the word itself, longest first."""
    found = _COMPOUNDS_BY_VERB.get(stem, [])
    if key != stem and key in _COMPOUNDS_BY_VERB:
        found = sorted(found + _COMPOUNDS_BY_VERB[key])
    return found


_COMPOUNDS_LONGEST_FIRST = sorted(TR_COMPOUNDS.items(), key=lambda kv: -len(kv[0][0]))
# By verb stem, in that order (the rank first): a verb is checked against its own compounds only.
_COMPOUNDS_BY_VERB: dict[str, list[tuple[int, tuple[str, ...], TaskType]]] = {}
for _rank, ((_nouns, _verb_stem), _compound_type) in enumerate(_COMPOUNDS_LONGEST_FIRST):
    _COMPOUNDS_BY_VERB.setdefault(_verb_stem, []).append((_rank, _nouns, _compound_type))


def mentions_language(words: list[Token]) -> Token | None:
    return next((w for w in words if w.base.startswith(LANGUAGE_NAMES)), None)


def mentions_format(words: list[Token]) -> Token | None:
    for word in words:
        base = word.base
        if base in FORMATS or base.lstrip(".") in FORMATS:
            return word
    return None


def _disambiguate(action: Action, words: list[Token]) -> Action:
    """Decide verbs whose type depends on their object: çevir / convert a file or a text,
    yükle (upload) a file or (install) a program."""
    verb_key = words[action.start].key
    verb = turkish_verbs.lookup(verb_key)
    stem = verb.stem if verb is not None else verb_key
    if stem == "yukle" and action.task_type is TaskType.SEND:
        others = words[: action.start] + words[action.end :]
        if any(w.key.startswith(_SOFTWARE_WORDS) for w in others):
            return _with_type(action, TaskType.EXECUTE, action.confidence)
        return action
    if action.task_type not in (TaskType.TRANSFORM, TaskType.TRANSLATE) or (
        stem not in _AMBIGUOUS_CONVERT and verb_key not in _AMBIGUOUS_CONVERT
    ):
        return action
    others = words[: action.start] + words[action.end :]
    if mentions_language(others) is not None:
        return _with_type(action, TaskType.TRANSLATE, action.confidence)
    if mentions_format(others) is not None:
        return _with_type(action, TaskType.TRANSFORM, action.confidence)
    if stem == "cevir" and not any(w.key.startswith(_FILE_WORDS) for w in others):
        return _with_type(action, TaskType.TRANSLATE, CONFIDENCE_DEFAULTED)
    return _with_type(action, TaskType.TRANSFORM, CONFIDENCE_DEFAULTED)


def _with_type(action: Action, task_type: TaskType, confidence: float) -> Action:
    return Action(task_type, min(confidence, action.confidence), action.start, action.end, action.at_head)
