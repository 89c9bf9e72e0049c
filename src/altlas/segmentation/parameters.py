"""Parameters of a segment, cut from the command so that every value is a substring of it.

English arguments follow the verb and are told apart by prepositions ("copy A to
B", "send A to B"); Turkish arguments precede it and are told apart by case
endings (accusative "raporu", dative "Ayşe'ye", "klasörüne"). Each task type
names the arguments it needs (search: query; move: source, destination; ...),
everything else gets `object`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from altlas.plans.model import Language, Parameter, TaskType
from altlas.segmentation.classifier import Action, mentions_format, mentions_language
from altlas.segmentation.lexicon import EN_FILLERS, LANGUAGE_NAMES, TR_FILLERS
from altlas.segmentation.phrases import PhraseSet
from altlas.segmentation.text import Token
from altlas.segmentation.timex import find_time_spans

__all__ = ["extract_parameters"]

_DESCRIPTIONS = {
    "query": "What to search for",
    "target": "Application, window or item the action applies to",
    "title": "Name of the thing to create",
    "format": "File format",
    "destination": "Where the result goes",
    "source": "What is moved or copied",
    "recipient": "Who or where it is sent to",
    "object": "What the action applies to",
    "target_language": "Language to translate into",
    "target_format": "Format or shape to convert into",
    "when": "Time expression, as written",
}
_REQUIRED = {
    TaskType.SEARCH: {"query"},
    TaskType.OPEN: {"target"},
    TaskType.CLOSE: {"target"},
    TaskType.CREATE: {"title"},
    TaskType.SAVE: {"destination"},
    TaskType.MOVE: {"source", "destination"},
    TaskType.COPY: {"source", "destination"},
    TaskType.SEND: {"recipient"},
    TaskType.TRANSLATE: {"target_language"},
    TaskType.TRANSFORM: {"target_format"},
    TaskType.SCHEDULE: {"when"},
}

_EN_TO = frozenset({"to", "into", "onto", "in", "inside", "under", "on"})
_EN_RECIPIENT = frozenset({"to", "with"})
_EN_RECIPIENT_END = frozenset({"via", "using", "through", "by", "on", "over", "at", "in", "as"})
_EN_LEADING = frozenset({"for", "about", "of", "up", "me", "out", "from"})
_EN_TRAILING = (("on", "google"), ("online",), ("on", "the", "web"), ("on", "the", "internet"), ("for", "me"))
_EN_FILLER_SET = PhraseSet(EN_FILLERS)
_TR_FILLER_SET = PhraseSet(TR_FILLERS)
_EN_TRAILING_SET = PhraseSet(_EN_TRAILING)
_EN_NAMING = frozenset({"called", "named", "titled", "entitled"})
_TR_NAMING = frozenset({"adinda", "adli", "isimli", "baslikli", "diye", "ismiyle", "adiyla"})
_TR_WEB = ("google'da", "google", "internette", "web'de", "webde", "netten", "youtube'da")
_TR_DATIVE = re.compile(r"(?:'(?:y?a|y?e|n?a|n?e)|(?:ina|ine|una|une|ya|ye|na|ne))$")
_TR_LOCATIVE = re.compile(r"(?:'(?:d|t)(?:a|e)|(?:nda|nde|ında|inde|unda|unde))$")
_TR_ACCUSATIVE = re.compile(r"(?:'(?:y?i|y?u|n?i|n?u)|(?:yi|yu|ni|nu|leri|lari|ini|unu|sini|sunu))$")
_EN_TITLE_END = frozenset({"on", "in", "at", "under", "inside", "for", "with", "to", "and", "as"})


class _Builder:
    """Collects parameters for one segment, with values cut from the command."""

    def __init__(self, command: str, task_type: TaskType) -> None:
        self.command = command
        self.required = _REQUIRED.get(task_type, set())
        self.parameters: list[Parameter] = []

    def add(self, name: str, words: list[Token], *, strip_case: bool = False) -> None:
        """Add `name` with the command text that `words` cover (without a case suffix if asked)."""
        if not words:
            return
        end = words[-1].end
        if strip_case and "'" in words[-1].text[1:]:
            end = words[-1].start + words[-1].text.index("'", 1)
        self.add_span(name, words[0].start, end)

    def add_span(self, name: str, start: int, end: int) -> None:
        value = self.command[start:end].strip(" \"'“”«»")
        if value and not any(p.name == name for p in self.parameters):
            self.parameters.append(
                Parameter(name, value, required=name in self.required, description=_DESCRIPTIONS[name])
            )


def extract_parameters(
    command: str, folded: str, words: list[Token], action: Action | None, task_type: TaskType,
    language: Language,
) -> list[Parameter]:  # fmt: skip
    """Parameters for a clause's words, given its action and type."""
    builder = _Builder(command, task_type)
    args = _argument_words(words, action, language)
    args = _take_time(builder, folded, args, language, task_type)
    extractor = _EXTRACTORS[language].get(task_type, _en_object if language is Language.EN else _tr_object)
    extractor(builder, args, words)
    return builder.parameters


def _argument_words(words: list[Token], action: Action | None, language: Language) -> list[Token]:
    """The clause's words other than its verb and politeness."""
    if action is None:
        args = list(words)
    elif language is Language.EN:
        args = words[action.end :] if action.at_head else words[: action.start] + words[action.end :]
    else:
        args = words[: action.start] + words[action.end :]
    return (_EN_FILLER_SET if language is Language.EN else _TR_FILLER_SET).strip(args)


def _take_time(
    builder: _Builder, folded: str, args: list[Token], language: Language, task_type: TaskType
) -> list[Token]:
    """Record a time expression as `when`; cut it from the arguments if it ends or starts them."""
    if not args:
        return args
    spans = find_time_spans(folded, language.value, args[0].start, args[-1].end)
    if not spans:
        return args
    start, end = spans[-1] if task_type is not TaskType.SCHEDULE else (spans[0][0], spans[-1][1])
    builder.add_span("when", start, end)
    inside = [w for w in args if start <= w.start and w.end <= end]
    if not inside:
        return args
    if inside[-1] is args[-1] or inside[0] is args[0]:
        return [w for w in args if not (start <= w.start and w.end <= end)]
    return args


def _split_at(words: list[Token], keys: frozenset[str]) -> tuple[list[Token], list[Token]] | None:
    for i, word in enumerate(words):
        if word.key in keys:
            return words[:i], words[i + 1 :]
    return None


def _strip_en(words: list[Token]) -> list[Token]:
    while words and words[0].key in _EN_LEADING:
        words = words[1:]
    return _EN_TRAILING_SET.strip(words, leading=False)


# --- English -------------------------------------------------------------------------


def _en_search(b: _Builder, args: list[Token], words: list[Token]) -> None:
    b.add("query", _strip_en(args))


def _en_target(b: _Builder, args: list[Token], words: list[Token]) -> None:
    b.add("target", _strip_en(args))


def _en_create(b: _Builder, args: list[Token], words: list[Token]) -> None:
    title = _quoted_or_named(args, _EN_NAMING, after=True)
    _add_format(b, args)
    if title:
        b.add("title", title)
        return
    before_as = _split_at(args, frozenset({"as", "in"}))
    b.add("title", _strip_en(before_as[0] if before_as and before_as[0] else args))


def _en_save(b: _Builder, args: list[Token], words: list[Token]) -> None:
    fmt = _add_format(b, args)
    split = _split_at(args, _EN_TO | {"as"})
    if split is None:
        b.add("object", _strip_en(args))
        return
    obj, rest = split
    b.add("object", _strip_en(obj))
    rest = [w for w in rest if w is not fmt and w.key not in ("file", "format", "a", "an")] if fmt else rest
    b.add("destination", _strip_en(rest))


def _en_move(b: _Builder, args: list[Token], words: list[Token]) -> None:
    split = _split_at(args, _EN_TO)
    if split is None:
        b.add("source", _strip_en(args))
        return
    b.add("source", _strip_en(split[0]))
    b.add("destination", _strip_en(split[1]))


def _en_send(b: _Builder, args: list[Token], words: list[Token]) -> None:
    split = _split_at(args, _EN_RECIPIENT)
    if split is None:
        verb = words[0].key if words else ""
        if verb in ("email", "e-mail", "mail", "message", "text", "dm") and args:
            b.add("recipient", _until(args, _EN_RECIPIENT_END))
        else:
            b.add("object", _strip_en(args))
        return
    obj, rest = split
    b.add("recipient", _until(rest, _EN_RECIPIENT_END))
    b.add("object", _strip_en(obj))


def _until(words: list[Token], stops: frozenset[str]) -> list[Token]:
    for i, word in enumerate(words):
        if i > 0 and word.key in stops:
            return words[:i]
    return words


def _en_translate(b: _Builder, args: list[Token], words: list[Token]) -> None:
    language = mentions_language(args)
    if language is not None:
        b.add("target_language", [language], strip_case=True)
        args = [w for w in args if w.start < language.start]
        if args and args[-1].key in _EN_TO | {"to"}:
            args = args[:-1]
    b.add("object", _strip_en(args))


def _en_transform(b: _Builder, args: list[Token], words: list[Token]) -> None:
    fmt = mentions_format(args)
    split = _split_at(args, frozenset({"to", "into", "as"}))
    if fmt is not None:
        b.add("target_format", [fmt], strip_case=True)
    elif split is not None:
        b.add("target_format", split[1])
    b.add("object", _strip_en(split[0] if split else args))


def _en_object(b: _Builder, args: list[Token], words: list[Token]) -> None:
    b.add("object", _strip_en(args))


# --- Turkish -------------------------------------------------------------------------


def _tr_search(b: _Builder, args: list[Token], words: list[Token]) -> None:
    while len(args) > 1 and args[0].key in _TR_WEB:
        args = args[1:]
    if len(args) > 1 and args[-1].key == "icin":
        args = args[:-1]
    b.add("query", args)


def _tr_target(b: _Builder, args: list[Token], words: list[Token]) -> None:
    b.add("target", args, strip_case=True)


def _tr_create(b: _Builder, args: list[Token], words: list[Token]) -> None:
    _add_format(b, args)
    title = _quoted_or_named(args, _TR_NAMING, after=False)
    b.add("title", title or args, strip_case=bool(title))


def _tr_save(b: _Builder, args: list[Token], words: list[Token]) -> None:
    fmt = _add_format(b, args)
    olarak = _split_at(args, frozenset({"olarak"}))
    if olarak is not None and olarak[0]:
        named = olarak[0][-1]
        if named is not fmt:
            b.add("destination", [named], strip_case=True)
        b.add("object", olarak[0][:-1])
        return
    where = _last_matching(args, _TR_DATIVE) or _last_matching(args, _TR_LOCATIVE)
    if where is not None:
        obj, dest = _tr_case_split(args, where)
        b.add("destination", dest, strip_case=True)
        b.add("object", obj)
    else:
        b.add("object", args)


def _tr_move(b: _Builder, args: list[Token], words: list[Token]) -> None:
    where = _last_matching(args, _TR_DATIVE) or _last_matching(args, _TR_LOCATIVE)
    if where is None:
        b.add("source", args)
        return
    source, dest = _tr_case_split(args, where)
    b.add("source", source)
    b.add("destination", dest, strip_case=True)


def _tr_send(b: _Builder, args: list[Token], words: list[Token]) -> None:
    where = _last_matching(args, _TR_DATIVE)
    if where is None:
        b.add("object", args)
        return
    obj, recipient = _tr_case_split(args, where)
    b.add("recipient", recipient, strip_case=True)
    b.add("object", obj)


def _tr_translate(b: _Builder, args: list[Token], words: list[Token]) -> None:
    language = mentions_language(args)
    if language is not None:
        stem = next(s for s in LANGUAGE_NAMES if language.base.startswith(s))
        b.add_span("target_language", language.start, language.start + len(stem))
        args = [w for w in args if w is not language]
    b.add("object", args)


def _tr_transform(b: _Builder, args: list[Token], words: list[Token]) -> None:
    fmt = mentions_format(args)
    if fmt is not None:
        b.add("target_format", [fmt], strip_case=True)
        args = [w for w in args if w.start < fmt.start]
    b.add("object", args)


def _tr_object(b: _Builder, args: list[Token], words: list[Token]) -> None:
    b.add("object", args)


def _last_matching(words: list[Token], pattern: re.Pattern[str]) -> int | None:
    for i in range(len(words) - 1, -1, -1):
        if len(words[i].key) > 3 and pattern.search(words[i].key):
            return i
    return None


def _tr_case_split(words: list[Token], where: int) -> tuple[list[Token], list[Token]]:
    """Split at the case-marked phrase ending at `where`: (words before it, the phrase)."""
    start = where
    while start > 0 and not _TR_ACCUSATIVE.search(words[start - 1].key):
        start -= 1
    if start == 0:  # no accusative before it: the phrase is the marked word alone
        start = where
    before = words[:start] + words[where + 1 :]
    return before, words[start : where + 1]


# --- Shared ----------------------------------------------------------------------------


def _add_format(b: _Builder, args: list[Token]) -> Token | None:
    fmt = mentions_format(args)
    if fmt is not None and "." not in fmt.key.strip("."):
        b.add("format", [fmt], strip_case=True)
    elif fmt is not None:  # report.pdf: the format is the extension
        ext = fmt.text.rsplit(".", 1)[1]
        b.add_span("format", fmt.end - len(ext), fmt.end)
    return fmt


def _quoted_or_named(args: list[Token], naming: frozenset[str], *, after: bool) -> list[Token] | None:
    if not args:
        return None
    for i, word in enumerate(args):
        if word.key in naming:
            if after:
                return _until(args[i + 1 :], _EN_TITLE_END) or None
            return args[i - 1 : i] if i > 0 else None
    return None


Extractor = Callable[[_Builder, list[Token], list[Token]], None]
_EXTRACTORS: dict[Language, dict[TaskType, Extractor]] = {
    Language.EN: {
        TaskType.SEARCH: _en_search,
        TaskType.OPEN: _en_target,
        TaskType.CLOSE: _en_target,
        TaskType.CREATE: _en_create,
        TaskType.SAVE: _en_save,
        TaskType.MOVE: _en_move,
        TaskType.COPY: _en_move,
        TaskType.SEND: _en_send,
        TaskType.TRANSLATE: _en_translate,
        TaskType.TRANSFORM: _en_transform,
    },
    Language.TR: {
        TaskType.SEARCH: _tr_search,
        TaskType.OPEN: _tr_target,
        TaskType.CLOSE: _tr_target,
        TaskType.CREATE: _tr_create,
        TaskType.SAVE: _tr_save,
        TaskType.MOVE: _tr_move,
        TaskType.COPY: _tr_move,
        TaskType.SEND: _tr_send,
        TaskType.TRANSLATE: _tr_translate,
        TaskType.TRANSFORM: _tr_transform,
    },
}
