"""Rules every JSON request body must keep, checked once, before any route parses it.

- No lone UTF-16 surrogates: JSON allows the escape "\\ud800" without its pair, but such a string
  is not valid Unicode, so no model, tokenizer, database or JSON answer can take it.
- At most MAX_JSON_DEPTH levels of nesting: deeper bodies cost recursion in every layer that
  walks them (pydantic, copies, json.dumps) and serve no request.

Most bodies pass on a scan of their bytes alone: a lone surrogate can only arrive as a
`\\uD800`-`\\uDFFF` escape (raw surrogates are not valid UTF-8), and a body can only nest deeper
than N levels if it holds more than N `[`/`{` bytes. A body that fails that scan is looked at
more closely, still with whole-buffer operations (regex, bytes, numpy), and parsed only when it
breaks a rule, to name the field at fault. Malformed JSON passes: the route's own parsing
answers it (400).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from altlas.errors import InvalidInputError

__all__ = ["MAX_JSON_DEPTH", "check_json_body"]

MAX_JSON_DEPTH = 64

# Any escape of a surrogate, paired or not: the cheap first look.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# A high surrogate's escape not followed by a low one's, or a low one's not after a high one's.
# (A decoder joins a high and a low escape into one character: an emoji sent by a client that
# escapes everything beyond ASCII.)
_LONE_SURROGATE_ESCAPE = re.compile(  # starts with its literal "\\u": a fast search
    rb"\\u[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD])[c-fC-F][0-9a-fA-F]{2})"
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# After a string's closing quote: the string was a key.
_KEY_FOLLOWS = re.compile(rb"[ \t\r\n]*:")
_CLOSERS = bytes.maketrans(b"[{", b"]}")
_CHUNK = 1 << 20  # bytes per numpy step: bounds the scan's memory whatever the body's size
_MAX_KEY_CHARS = 100


def check_json_body(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise InvalidInputError naming the first field that nests deeper than `max_depth` levels
    (the body's own object or array is level 1) or holds a lone surrogate (in a key or a value).

    Fields are named as the API names them elsewhere: `commands[1]`, `messages[0].content`."""
    body = _as_utf8(body)
    deep = _opens(body) > max_depth
    lone = _SURROGATE_ESCAPE.search(body) is not None
    if not (deep or lone):
        return
    scan = _Scan(body)
    if deep:
        field = scan.first_too_deep(max_depth)
        if field is not None:
            raise InvalidInputError(f"is nested deeper than {max_depth} levels", field=field)
    if lone:
        field = scan.first_lone_surrogate()
        if field is not None:
            raise InvalidInputError("is not valid Unicode (it holds a lone surrogate)", field=field)


def _as_utf8(body: bytes) -> bytes:
    """The body as UTF-8, as json.loads would read it (it also takes UTF-16 and UTF-32)."""
    encoding = json.detect_encoding(body)
    if encoding in ("utf-8", "utf-8-sig"):
        return body
    try:
        return body.decode(encoding).encode("utf-8")
    except UnicodeError:
        return b""  # not text: the route's parsing refuses it


def _opens(data: bytes) -> int:
    return data.count(b"[") + data.count(b"{")


class _Scan:
    """A body looked at closely: where its structure goes too deep, where a lone surrogate lies,
    and the field at such a place. Whole-buffer operations only (bytes, regex, numpy in chunks),
    then one json.loads of the body up to that place."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        # Escaped backslashes, then escaped quotes, blanked with their lengths kept (left to right,
        # as a decoder reads them): every '"' left starts or ends a string, every backslash left
        # starts an escape, and an index here is the same index in the body.
        self.plain = body.replace(b"\\\\", b"__").replace(b'\\"', b"__")

    def first_too_deep(self, max_depth: int) -> str | None:
        """The field of the first container that opens level max_depth + 1."""
        for brackets, levels in self._brackets(len(self.plain)):
            over = levels > max_depth
            if over.any():
                return self._field_at(int(brackets[over.argmax()]))
        return None

    def first_lone_surrogate(self) -> str | None:
        """The field of the first key or string value with a lone surrogate."""
        found = _LONE_SURROGATE_ESCAPE.search(self.plain)
        if found is None:
            return None
        try:  # malformed JSON is the first thing wrong: the route says so (400)
            json.loads(self.body)
        except (ValueError, RecursionError):
            return None
        start = self.plain.rfind(b'"', 0, found.start())
        end = self.plain.find(b'"', found.end())
        if start < 0 or end < 0:
            return None  # malformed: the route says so
        if _KEY_FOLLOWS.match(self.plain, end + 1) is None:
            return self._field_at(start)
        try:
            key = json.loads(self.body[start : end + 1])
        except ValueError:
            return None
        return self._field_at(start, key=key)

    def _field_at(self, at: int, key: str | None = None) -> str | None:
        """The field of the value (or with `key`, of the member) that starts at index `at`.
        Closing the body there with a null makes a small valid document whose last member,
        level by level, is that field."""
        closed = (
            self.body[:at]
            + (b"null" if key is None else b'"":null')
            + self._open_brackets(at)[::-1].translate(_CLOSERS)
        )
        try:
            node: Any = json.loads(closed, object_pairs_hook=_Members)
        except (ValueError, RecursionError):
            return None  # malformed before that place: the route says so
        path: list[str | int] = []
        while isinstance(node, list) and node:
            if isinstance(node, _Members):
                name, node = node[-1]
                path.append(name)
            else:
                path.append(len(node) - 1)
                node = node[-1]
        if key is not None and path:
            path[-1] = key
        return _field(path)

    def _open_brackets(self, at: int) -> bytes:
        """The brackets still open at index `at`, outermost first."""
        import numpy as np

        stack = b""
        body = np.frombuffer(self.plain, np.uint8, count=at)
        for brackets, _levels in self._brackets(at):
            stack = _unmatched(stack + body[brackets].tobytes())
        return stack

    def _brackets(self, stop: int) -> Iterator[tuple[Any, Any]]:
        """Up to index `stop`, a chunk at a time: (the indexes of the brackets outside strings, the
        level after each of them). Numpy, in chunks of the body: fast, in bounded memory."""
        import numpy as np  # here, not at the top: importing the API costs none of numpy's start-up

        step = _step_table()
        quotes_before = depth = 0
        for start in range(0, stop, _CHUNK):
            chunk = np.frombuffer(self.plain, np.uint8, count=min(_CHUNK, stop - start), offset=start)
            brackets = np.flatnonzero(step[chunk])
            quotes = np.flatnonzero(chunk == ord('"'))
            # A bracket after an odd number of quotes lies inside a string.
            outside = (np.searchsorted(quotes, brackets) + quotes_before) % 2 == 0
            quotes_before += len(quotes)
            brackets = brackets[outside]
            levels = np.cumsum(step[chunk[brackets]], dtype=np.int64)
            levels += depth
            if len(levels):
                depth = int(levels[-1])
            yield brackets + start, levels


def _unmatched(brackets: bytes) -> bytes:
    """The brackets left once matching pairs are taken away, innermost first, until none is left."""
    while True:
        left = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(left) == len(brackets):
            return left
        brackets = left


@cache
def _step_table() -> Any:
    import numpy as np

    step = np.zeros(256, np.int8)
    step[[ord("["), ord("{")]] = 1
    step[[ord("]"), ord("}")]] = -1
    return step


class _Members(list[tuple[str, Any]]):
    """An object's members in order, repeated keys kept: the last one written is the one cut off."""


def _field(path: list[str | int]) -> str:
    """`commands[1]`, `messages[0].content`: as altlas.api.errors writes pydantic's locations.
    Keys are shortened and their surrogates written as escapes, so the answer stays valid JSON."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if len(part) <= _MAX_KEY_CHARS else part[:_MAX_KEY_CHARS] + "..."
            key = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", key)
            text += ("." if text else "") + key
    return text or "body"
