"""Find the action of a clause and decide its task type.

English puts the imperative verb first ("Open Firefox"), Turkish last ("Firefox'u
aç"), so each language looks for its verb where it belongs, skipping politeness
("please", "lütfen") and, in English, words used as nouns ("the download folder").
Words match whole words and Turkish inflected forms, never raw substrings, so
"ara" is not found in "olarak" nor "browse" in "browser".
"""

from __future__ import annotations

from dataclasses import dataclass

from altlas.plans.model import Language, TaskType
from altlas.segmentation import turkish_verbs
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
)
from altlas.segmentation.phrases import PhraseSet
from altlas.segmentation.text import Token

__all__ = ["Action", "find_action", "mentions_format", "mentions_language"]

# Confidence by where the verb was found.
CONFIDENCE_HEAD = 0.95  # where the language puts its verb
CONFIDENCE_ELSEWHERE = 0.8
CONFIDENCE_DEFAULTED = 0.6  # an ambiguous verb whose object did not decide it
CONFIDENCE_UNKNOWN = 0.4  # no known action: execute, at most 0.5 by contract

_AMBIGUOUS_CONVERT = frozenset({"convert", "cevir", "turn"})
_FILE_WORDS = (
    "dosya", "belge", "resim", "gorsel", "fotograf", "foto", "video", "tablo", "sunum", "goruntu",
    "file", "image", "photo", "picture", "video", "document", "spreadsheet", "audio", "sound",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Action:
    task_type: TaskType
    confidence: float
    start: int  # index of the first word of the verb (phrase) in the clause's words
    end: int  # one past its last word
    at_head: bool  # found where the language puts its verb: the clause is an action


def find_action(words: list[Token], language: Language) -> Action | None:
    """The action of a clause (its words only, no punctuation), or None if it has none."""
    if not words:
        return None
    action = _find_en(words) if language is Language.EN else _find_tr(words)
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


def _en_verb_at(words: list[Token], i: int) -> tuple[TaskType, int] | None:
    key = words[i].key
    for phrase, task_type in _PHRASES_BY_FIRST.get(key, ()):
        end = _matches(words, i, phrase)
        if end > 0:
            return task_type, end
    verb_type = EN_VERBS.get(key)
    return (verb_type, i + 1) if verb_type is not None else None


def _find_en(words: list[Token]) -> Action | None:
    head = 0
    while head < len(words) and (n := _EN_FILLER_SET.length_at(words, head)):
        head += n
    for i in range(head, len(words)):
        if i > head and words[i - 1].key in EN_BLOCKERS:
            continue  # "the search results", "for download": a noun here
        found = _en_verb_at(words, i)
        if found is not None:
            task_type, end = found
            at_head = i == head
            return Action(task_type, CONFIDENCE_HEAD if at_head else CONFIDENCE_ELSEWHERE, i, end, True)
    if head < len(words) and words[head].key in EN_OTHER_VERBS:
        # An action, but none of the 20 types: "turn up the volume".
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, head, head + 1, True)
    return None


def _last_content_index(words: list[Token]) -> int:
    """Index of the last word that is not politeness or a question particle."""
    end = len(words)
    while end > 0:
        key = words[end - 1].key
        if key in _TR_PARTICLES or any(len(f) == 1 and f[0] == key for f in TR_FILLERS):
            end -= 1
            continue
        break
    return end - 1


_TR_PARTICLES = frozenset(
    "mi mu misin musun misiniz musunuz miyiz lutfen ltfn ltf hemen simdi acil acilen derhal bakalim "
    "hadi tesekkurler sagol".split()
)


def _find_tr(words: list[Token]) -> Action | None:
    last = _last_content_index(words)
    if last < 0:
        return None
    verb = turkish_verbs.lookup(words[last].key)
    if verb is not None:
        return _tr_action(words, last, verb, at_head=True)
    # No verb at the end: take the last verb form anywhere, as a weaker guess.
    for i in range(last - 1, -1, -1):
        verb = turkish_verbs.lookup(words[i].key)
        if verb is not None and verb.task_type is not None:
            return _tr_action(words, i, verb, at_head=False)
    return None


def _tr_action(words: list[Token], i: int, verb: turkish_verbs.VerbForm, *, at_head: bool) -> Action:
    compound = _tr_compound(words, i, verb)
    if compound is not None:
        task_type, start = compound
        return Action(task_type, CONFIDENCE_HEAD if at_head else CONFIDENCE_ELSEWHERE, start, i + 1, at_head)
    if verb.task_type is None:  # a light verb (et, al) with no known noun: some action
        return Action(TaskType.EXECUTE, CONFIDENCE_UNKNOWN, i, i + 1, at_head)
    return Action(verb.task_type, CONFIDENCE_HEAD if at_head else CONFIDENCE_ELSEWHERE, i, i + 1, at_head)


def _tr_compound(words: list[Token], i: int, verb: turkish_verbs.VerbForm) -> tuple[TaskType, int] | None:
    for (nouns, verb_stem), task_type in _COMPOUNDS_LONGEST_FIRST:
        if verb.stem != verb_stem and words[i].key != verb_stem:
            continue
        start = i - len(nouns)
        if start < 0:
            continue
        if all(words[start + k].key.startswith(noun) for k, noun in enumerate(nouns)):
            return task_type, start
    if verb.task_type is None:
        # A light verb may sit apart from its noun: "adını sunum.pptx olarak değiştir".
        for (nouns, verb_stem), task_type in _COMPOUNDS_LONGEST_FIRST:
            if len(nouns) == 1 and verb.stem == verb_stem:
                for j in range(i - 2, -1, -1):
                    if words[j].key.startswith(nouns[0]):
                        return task_type, i
    return None


_COMPOUNDS_LONGEST_FIRST = sorted(TR_COMPOUNDS.items(), key=lambda kv: -len(kv[0][0]))


def mentions_language(words: list[Token]) -> Token | None:
    return next((w for w in words if w.base.startswith(LANGUAGE_NAMES)), None)


def mentions_format(words: list[Token]) -> Token | None:
    for word in words:
        base = word.base
        if base in FORMATS or base.lstrip(".") in FORMATS:
            return word
    return None


def _disambiguate(action: Action, words: list[Token]) -> Action:
    """Decide verbs whose type depends on their object: çevir / convert a file or a text."""
    verb_key = words[action.start].key
    verb = turkish_verbs.lookup(verb_key)
    stem = verb.stem if verb is not None else verb_key
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
