"""Parameters of a segment, cut from the command so that every value is a substring of it.

English arguments follow the verb and are told apart by prepositions ("copy A to
B", "send A to B") or, after send-like verbs, by order ("email Dr. Smith the
results"); Turkish arguments precede it and are told apart by case endings
(accusative "raporu", dative "Ayşe'ye", "klasörüne", see `turkish_cases`). Each task
type names the arguments it needs (search: query; move: source, destination; ...),
everything else gets `object`.

A value names the thing: a whole noun phrase ("Mehmet Bey", "Google Drive", "USB
belleğe", "genel kanala"), without the verb, question particles (mısın, misiniz),
politeness (please, lütfen) or a leading article or demonstrative (the, a, this, bu,
şu, bir). Turkish values lose a suffix written after an apostrophe ("Drive'a" ->
"Drive", "README'yi" -> "README"): it follows a name, whose written form is the name.
A suffix fused into a common noun stays ("ekibe", "klasörüne"): cutting it would not
leave the word ("ekibe" is "ekip" + "e"), and values stay substrings of the command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from altlas.plans.model import Language, Parameter, TaskType
from altlas.segmentation.classifier import Action, mentions_format, mentions_language
from altlas.segmentation.lexicon import EN_FILLERS, LANGUAGE_NAMES, TR_FILLERS
from altlas.segmentation.phrases import PhraseSet
from altlas.segmentation.text import Token
from altlas.segmentation.timex import find_time_spans
from altlas.segmentation.turkish_cases import (
    POST_TITLES,
    TR_DETERMINERS,
    TR_POLITENESS,
    Case,
    apostrophe_cut,
    case_of,
    case_suffix_cut,
    is_question_particle,
)

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
_EN_LEADING = frozenset({"for", "about", "of", "up", "me", "out", "from", "to", "over", "along"})
_EN_TRAILING = (("on", "google"), ("online",), ("on", "the", "web"), ("on", "the", "internet"), ("for", "me"))
_EN_FILLER_SET = PhraseSet(EN_FILLERS)
_TR_FILLER_SET = PhraseSet(TR_FILLERS)
_EN_TRAILING_SET = PhraseSet(_EN_TRAILING)
_EN_NAMING = frozenset({"called", "named", "titled", "entitled"})
_TR_NAMING = frozenset({"adinda", "adli", "isimli", "baslikli", "diye", "ismiyle", "adiyla"})
_TR_NAMED = frozenset({"adiyla", "ismiyle", "adinda", "isimli", "adli"})  # "X adıyla kaydet": save as X
_TR_WEB = ("google'da", "google", "internette", "web'de", "webde", "netten", "youtube'da")
_EN_TITLE_END = frozenset({"on", "in", "at", "under", "inside", "for", "with", "to", "and", "as"})
# Articles and demonstratives: "the report" names the report. Possessives and quantifiers
# ("my desktop", "all files") stay: they change what is named.
_EN_DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those"})
# Verbs whose first object may be the recipient: "email Dr. Smith the results".
_EN_DITRANSITIVE = frozenset({"email", "e-mail", "mail", "message", "text", "dm", "send", "forward"})
_EN_MESSAGING = frozenset({"email", "e-mail", "mail", "message", "text", "dm"})
_EN_TITLES = frozenset({"dr", "mr", "mrs", "ms", "miss", "prof", "sir", "madam", "dear"})
_EN_PEOPLE = frozenset(
    "me him her them us everyone everybody team group channel boss manager mom mum dad mother father "
    "client clients customer customers colleague colleagues coworkers friends family lawyer accountant "
    "support department teacher doctor wife husband sister brother".split()
)
_EN_TIME_PREPOSITIONS = frozenset({"for", "at", "on", "by", "in", "from", "until", "before", "after"})
_QUOTES = frozenset("\"'“”«»")
_CLOSERS = {'"': '"', "'": "'", "“": "”", "«": "»"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.\w+")


class _Builder:
    """Collects parameters for one segment, with values cut from the command."""

    def __init__(self, command: str, task_type: TaskType, language: Language) -> None:
        self.command = command
        self.language = language
        self.required = _REQUIRED.get(task_type, set())
        self.parameters: list[Parameter] = []

    def add(self, name: str, words: list[Token], *, strip_case: bool | None = None) -> None:
        """Add `name` with the command text that `words` cover: without a leading article or
        demonstrative and, in Turkish (or if asked), without a suffix after an apostrophe."""
        words = _without_determiners(words, self.language)
        if not words:
            return
        end = words[-1].end
        if strip_case is None:
            strip_case = self.language is Language.TR
        cut = case_suffix_cut(words[-1].key) if strip_case else None
        if cut is not None:
            end = words[-1].start + cut
        self.add_span(name, words[0].start, end)

    def add_span(self, name: str, start: int, end: int) -> None:
        start, end = _with_quotes(self.command, start, end)
        value = self.command[start:end].strip()
        if len(value) > 1 and value[0] in _QUOTES and value[-1] in _QUOTES:
            value = value[1:-1].strip()  # a quoted value is the text inside the quotes
        if value and not any(p.name == name for p in self.parameters):
            self.parameters.append(
                Parameter(name, value, required=name in self.required, description=_DESCRIPTIONS[name])
            )


def _with_quotes(command: str, start: int, end: int) -> tuple[int, int]:
    """The span with a quote that opens just before it (and closes inside) or closes just after it."""
    opening = command[start - 1] if start > 0 else ""
    if opening in _CLOSERS and _CLOSERS[opening] in command[start:end]:
        start -= 1
    if end < len(command) and command[end] in _QUOTES and command[end] in _CLOSERS.get(command[start], ""):
        end += 1
    return start, end


def _without_determiners(words: list[Token], language: Language) -> list[Token]:
    start = 0
    while start < len(words) - 1 and _is_determiner(words[start], language):
        start += 1
    return words[start:]


def _is_determiner(word: Token, language: Language) -> bool:
    if language is Language.EN:
        # "The Beatles", "The New York Times": a capital mid-sentence starts a name.
        return word.key in _EN_DETERMINERS and (word.text.islower() or word.start == 0)
    return word.key in TR_DETERMINERS or (word.key == "su" and word.text[0] in "şŞ")


def extract_parameters(
    command: str, folded: str, words: list[Token], action: Action | None, task_type: TaskType,
    language: Language,
) -> list[Parameter]:  # fmt: skip
    """Parameters for a clause's words, given its action and type."""
    builder = _Builder(command, task_type, language)
    argument_words = _en_argument_words if language is Language.EN else _tr_argument_words
    args = argument_words(words, action)
    timeless = _take_time(builder, folded, args, language, task_type)
    if len(timeless) < len(args):  # politeness the time hid: "iki saat sonra bana ... hatırlat"
        timeless = (_EN_FILLER_SET if language is Language.EN else _TR_FILLER_SET).strip(timeless)
    args = timeless
    extractor = _EXTRACTORS[language].get(task_type, _en_object if language is Language.EN else _tr_object)
    extractor(builder, args, words)
    return builder.parameters


def _en_argument_words(words: list[Token], action: Action | None) -> list[Token]:
    """The clause's words other than its verb and politeness."""
    if action is None:
        args = list(words)
    else:
        args = words[action.end :] if action.at_head else words[: action.start] + words[action.end :]
    return _EN_FILLER_SET.strip(args)


def _tr_argument_words(words: list[Token], action: Action | None) -> list[Token]:
    """The words before the verb (after it only if there are none before): without question
    particles, the verb form before a particle ("bakar mısın"), or politeness anywhere."""
    if action is None:
        before, after = list(words), []
    else:
        before, after = words[: action.start], words[action.end :]
    before = _tr_clean(before)
    return before if before else _tr_clean(after)


def _tr_clean(words: list[Token]) -> list[Token]:
    kept: list[Token] = []
    for word in words:
        if is_question_particle(word.key):
            if kept:
                kept.pop()  # "özetler misin", "bakar mısın": the verb asked about
            continue
        if word.key in TR_POLITENESS:
            continue
        kept.append(word)
    return _TR_FILLER_SET.strip(kept)


def _take_time(
    builder: _Builder, folded: str, args: list[Token], language: Language, task_type: TaskType
) -> list[Token]:
    """Record a time expression as `when` and cut it from the arguments: in Turkish wherever
    it is (cases tell the phrases apart), in English where it starts or ends them."""
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
    if language is Language.TR or inside[0] is args[0]:
        return [w for w in args if not (start <= w.start and w.end <= end)]
    if inside[-1] is args[-1]:  # "the review for March 20": the preposition goes too
        args = [w for w in args if w.end <= start]
        while len(args) > 1 and args[-1].key in _EN_TIME_PREPOSITIONS:
            args = args[:-1]
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
    if split is not None:
        obj, rest = split
        b.add("recipient", _until(rest, _EN_RECIPIENT_END))
        b.add("object", _strip_en(obj))
        return
    verb = _verb_before(args, words)
    messaging = verb in _EN_MESSAGING
    first, second = _en_two_objects(args, messaging) if verb in _EN_DITRANSITIVE else (None, args)
    if first is not None:  # "email Dr. Smith the lab results", "message Lisa that ..."
        b.add("recipient", first)
        b.add("object", _strip_en(second))
    elif messaging and args and _addressee(args):
        b.add("recipient", _until(args, _EN_RECIPIENT_END))
    else:
        b.add("object", _strip_en(args))


def _verb_before(args: list[Token], words: list[Token]) -> str:
    """The word just before the arguments: an English clause's verb."""
    if not args:
        return words[-1].key if words else ""
    at = next((i for i, w in enumerate(words) if w.start == args[0].start), 0)
    return words[at - 1].key if at > 0 else ""


def _en_two_objects(args: list[Token], messaging: bool) -> tuple[list[Token] | None, list[Token]]:
    """(recipient, object) of "send Ali the report"; (None, args) unless the words before the
    second phrase's article name someone."""
    for i in range(1, len(args)):
        if args[i].key in _EN_DETERMINERS and args[i].text.islower():
            first = args[:i]
            if _names_someone(first) or (messaging and _addressee(first)):
                return first, args[i:]
            break
    return None, args


def _names_someone(words: list[Token]) -> bool:
    """A name (capitalised words, titles), an address, a pronoun or a word for people."""
    words = _without_determiners(words, Language.EN)
    if words and (words[-1].key in _EN_PEOPLE or _EMAIL.fullmatch(words[-1].text)):
        return True
    return bool(words) and all(w.text[0].isupper() or w.key in _EN_TITLES for w in words)


def _addressee(words: list[Token]) -> bool:
    """After email / message / text: someone, or any phrase that is no article's thing or file
    ("message alex", "email my manager"; not "email the report")."""
    if _names_someone(words):
        return True
    return words[0].key not in _EN_DETERMINERS and not any("." in w.key.strip(".") for w in words)


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
#
# The words before the verb fall into noun phrases, each closed by a case ending: the
# dative phrase is the recipient or the destination, the accusative (or, without one,
# a bare) phrase the object or source. A phrase reaches left over unmarked words, so
# names, titles and compounds stay whole: "Mehmet Bey'e", "Google Drive'a", "USB
# belleğe", "genel kanala", "Sunum klasörünü".


@dataclass(slots=True)
class _TrPhrases:
    goal: list[Token]  # dative (or, for a send, "X ile"): recipient or destination
    obj: list[Token]  # accusative, else bare: object or source
    place: list[Token]  # locative: a save's or move's destination when there is no dative
    as_what: list[Token]  # "X olarak": a format or a name


_CLOSING = frozenset({Case.ACC, Case.LOC, Case.ABL, Case.INS})
_ACCUSATIVE_LOOKING = re.compile(r"[^aeiou][iu]$")  # mail+i, model+i: also önemli, harici
_POSSESSED = re.compile(r"(?:s[iu]|s[iu]n[iu]|s[iu]n[ae]|s[iu]nd[ae])$")  # dosyası(nı): a compound's head


def _tr_phrases(
    command: str, args: list[Token], words: list[Token], *, with_goal: bool = False
) -> _TrPhrases:
    """Split Turkish arguments into the phrases a verb takes (see above)."""
    index = {w.start: i for i, w in enumerate(words)}
    args, cases, as_what = _tr_marked(command, args, index)
    goal_at = _goal_head(args, cases, index, with_goal)
    goal: list[Token] = []
    rest = list(range(len(args)))
    if goal_at is not None:
        first = _phrase_start(args, cases, index, goal_at)
        goal = args[first : goal_at + 1]
        rest = [i for i in rest if not first <= i <= goal_at]
    chunks = _chunks([i for i in rest], args, cases, index)
    accusative = [c for c in chunks if cases[c[-1]][0] is Case.ACC]
    bare = [c for c in chunks if cases[c[-1]][0] in (Case.NONE, Case.DAT)]
    located = [c for c in chunks if cases[c[-1]][0] is Case.LOC]
    obj = accusative[-1] if accusative else bare[-1] if bare else []
    place = located[-1] if located else []
    return _TrPhrases(goal, [args[i] for i in obj], [args[i] for i in place], as_what)


def _tr_marked(
    command: str, args: list[Token], index: dict[int, int]
) -> tuple[list[Token], list[tuple[Case, bool]], list[Token]]:
    """The arguments without "X olarak" / "X adıyla" (as X, named X) and "ile" (the word before
    it made instrumental), their cases, and X: the phrase before "olarak"."""
    kept: list[Token] = []
    cases: list[tuple[Case, bool]] = []
    as_what: list[Token] = []
    for word in args:
        if (word.key == "olarak" or word.key in _TR_NAMED) and kept:
            quoted = kept[-1].text[-1] in _QUOTES  # 'Toplantı Notları' adıyla: back to the quote
            as_what = [kept.pop()]
            cases.pop()
            while kept and _adjacent(kept[-1], as_what[0], index) and (quoted or cases[-1][0] is Case.NONE):
                as_what.insert(0, kept.pop())
                cases.pop()
                if quoted and command[as_what[0].start - 1 : as_what[0].start] in _QUOTES:
                    break
        elif word.key == "ile" and kept:
            cases[-1] = (Case.INS, True)
        else:
            kept.append(word)
            cases.append(case_of(word.key))
    return kept, cases, as_what


def _goal_head(
    args: list[Token], cases: list[tuple[Case, bool]], index: dict[int, int], with_goal: bool
) -> int | None:
    """The last word of the dative phrase: the last sure dative, else the last likely one
    that does not modify the next word ("bütçe tablosunu"); for a send, else "X ile"."""
    weak: int | None = None
    instrumental: int | None = None
    for i in range(len(args) - 1, -1, -1):
        case, strong = cases[i]
        if case is Case.DAT and strong:
            return i
        if case is Case.DAT and weak is None and not _modifies_next(args, index, i):
            weak = i
        if case is Case.INS and instrumental is None:
            instrumental = i
    if weak is not None:
        return weak
    return instrumental if with_goal else None


def _modifies_next(args: list[Token], index: dict[int, int], i: int) -> bool:
    """Is args[i] part of the phrase after it: a compound's first noun ("bütçe tablosunu") or a
    name's first word ("Ayşe Hanım", "Ayşe Yılmaz")?"""
    if i + 1 >= len(args) or not _adjacent(args[i], args[i + 1], index):
        return False
    after = args[i + 1]
    if after.base in POST_TITLES or _POSSESSED.search(after.key):
        return True
    return args[i].text[0].isupper() and after.text[0].isupper() and index.get(args[i].start) != 0


def _adjacent(a: Token, b: Token, index: dict[int, int]) -> bool:
    return index.get(b.start, -1) == index.get(a.start, -2) + 1


def _phrase_start(args: list[Token], cases: list[tuple[Case, bool]], index: dict[int, int], head: int) -> int:
    """First word of the phrase ending at `head`: back over unmarked words, to the word after a
    case ending; a name before a title ("Nuri Bey") and capitalised names are taken whole. Before
    a name ("Ali'ye") a lower-case word ending like an accusative is one ("maili Ali'ye")."""
    start = head
    name_head = apostrophe_cut(args[head].key) is not None
    while start > 0 and _adjacent(args[start - 1], args[start], index):
        case, strong = cases[start - 1]
        before = args[start - 1]
        if case is Case.DAT and strong:
            break
        if name_head and before.text.islower() and _ACCUSATIVE_LOOKING.search(before.key):
            break
        if case in _CLOSING:
            after_title = args[start].base in POST_TITLES
            name = not strong and before.text[0].isupper() and index.get(before.start) != 0
            if not (after_title or name):
                break
        start -= 1
    return start


def _chunks(
    rest: list[int], args: list[Token], cases: list[tuple[Case, bool]], index: dict[int, int]
) -> list[list[int]]:
    """Phrases of the words left (indices): each ends at a case ending or where words are not
    adjacent; accusatives in a row make one ("doğum günü fotoğraflarını": a compound's parts)."""
    chunks: list[list[int]] = []
    for i in rest:
        if chunks and _continues(chunks[-1], i, args, cases, index):
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def _continues(
    chunk: list[int], i: int, args: list[Token], cases: list[tuple[Case, bool]], index: dict[int, int]
) -> bool:
    last = chunk[-1]
    if _adjacent(args[last], args[i], index) and not _closes(cases[last]):
        return True
    return _both_accusative(chunk, i, args, cases, index)


def _closes(case: tuple[Case, bool]) -> bool:
    return case[0] in _CLOSING or (case[0] is Case.DAT and case[1])


def _both_accusative(
    chunk: list[int], i: int, args: list[Token], cases: list[tuple[Case, bool]], index: dict[int, int]
) -> bool:
    """Does the phrase starting at `i` end in an accusative, right after `chunk`, which does too?"""
    if cases[chunk[-1]][0] is not Case.ACC or not _adjacent(args[chunk[-1]], args[i], index):
        return False
    j = i
    while j + 1 < len(args) and not _closes(cases[j]) and _adjacent(args[j], args[j + 1], index):
        j += 1
    return cases[j][0] is Case.ACC


def _weak_dative(case: tuple[Case, bool]) -> bool:
    return case[0] is Case.DAT and not case[1]


def _tr_search(b: _Builder, args: list[Token], words: list[Token]) -> None:
    while len(args) > 1 and args[0].key in _TR_WEB:
        args = args[1:]
    if len(args) > 1 and args[-1].key == "icin":
        args = args[:-1]
    b.add("query", args)


def _tr_target(b: _Builder, args: list[Token], words: list[Token]) -> None:
    b.add("target", args)


def _tr_create(b: _Builder, args: list[Token], words: list[Token]) -> None:
    _add_format(b, args)
    title = _quoted_or_named(args, _TR_NAMING, after=False)
    b.add("title", title or args)


def _tr_save(b: _Builder, args: list[Token], words: list[Token]) -> None:
    fmt = _add_format(b, args)
    phrases = _tr_phrases(b.command, args, words)
    destination = phrases.goal or phrases.place
    if not destination and phrases.as_what and fmt not in phrases.as_what:
        destination = phrases.as_what  # "rapor.txt olarak kaydet": the name to save as
    b.add("destination", destination)
    b.add("object", [w for w in phrases.obj if w is not fmt])


def _tr_move(b: _Builder, args: list[Token], words: list[Token]) -> None:
    phrases = _tr_phrases(b.command, args, words)
    b.add("source", phrases.obj)
    b.add("destination", phrases.goal or phrases.place)


def _tr_send(b: _Builder, args: list[Token], words: list[Token]) -> None:
    phrases = _tr_phrases(b.command, args, words, with_goal=True)
    b.add("recipient", phrases.goal or phrases.place)  # "ekip kanalında paylaş": where it goes
    b.add("object", phrases.obj)


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
        b.add("target_format", [fmt])
        args = [w for w in args if w.start < fmt.start]
    b.add("object", args)


def _tr_object(b: _Builder, args: list[Token], words: list[Token]) -> None:
    b.add("object", args)


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
