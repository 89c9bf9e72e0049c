"""check_json_body: lone surrogates and nesting depth, with the field named as the API names it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

import pytest

from altlas.api import json_checks
from altlas.api.json_checks import MAX_JSON_DEPTH, check_json_body
from altlas.errors import InvalidInputError

LONE = "is not valid Unicode (it holds a lone surrogate)"
DEEP = f"is nested deeper than {MAX_JSON_DEPTH} levels"


def refusal(body: bytes) -> tuple[str | None, str]:
    with pytest.raises(InvalidInputError) as info:
        check_json_body(body)
    return info.value.field, info.value.message


def nested(levels: int, opening: str = '{"a":', closing: str = "}") -> bytes:
    """A body whose innermost container is at `levels` (the body's own object is level 1)."""
    return ('{"options":' + opening * (levels - 2) + "{}" + closing * (levels - 2) + "}").encode()


# --- lone surrogates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (rb'{"command": "open \ud800 chrome"}', "command"),
        (rb'{"commands": ["open chrome", "open \udfff chrome"]}', "commands[1]"),
        (rb'{"model": "m", "messages": [{"role": "user", "content": "x \uDBFF"}]}', "messages[0].content"),
        (rb'{"kind": "segment", "input": {"command": "a\ud800"}}', "input.command"),
        (rb'{"options": {"a": {"b": ["ok", "\udc00"]}}}', "options.a.b[1]"),
        (rb'"\ud800"', "body"),
        (rb'["\ud800"]', "[0]"),
        # first in document order, where several are wrong
        (rb'{"b": [{"x": "\ud800"}], "a": "\ud801"}', "b[0].x"),
    ],
)
def test_a_lone_surrogate_in_a_value_is_refused_naming_its_field(body: bytes, field: str) -> None:
    assert refusal(body) == (field, LONE)


def test_a_lone_surrogate_in_a_key_names_the_key_with_its_escape() -> None:
    field, message = refusal(rb'{"options": {"ok": 1, "b\ud800d": 2}}')
    assert (field, message) == ("options.b\\ud800d", LONE)
    field.encode("utf-8")  # the error answer must stay valid JSON in UTF-8


@pytest.mark.parametrize(
    "text",
    [
        r"\ud800 chrome",  # high alone
        r"\udc00 chrome",  # low alone
        r"\udc00\ud800",  # low before high: two lone ones
        r"\ud83d\ud83d\ude00",  # a high, then a pair
        r"\ud83d\ude00\ude00",  # a pair, then a low
        r"\\\ud800",  # an escaped backslash, then a real escape
        r"\ud83d\"\ude00",  # something between the halves
    ],
)
def test_every_kind_of_lone_surrogate_is_found(text: str) -> None:
    assert refusal(b'{"command": "' + text.encode() + b'"}') == ("command", LONE)


@pytest.mark.parametrize(
    "text",
    [
        r"\ud83d\ude00",  # an emoji, as json.dumps writes it by default
        r"\uD83D\uDE00",
        r"\udbff\udfff",
        "\U0001f600",  # the emoji in UTF-8
        r"\\ud800",  # text: an escaped backslash, then "ud800"
        r"\\\\ud800",
        r"\\ud83d\\ude00",
        r"\u00e9\u20ac",  # escapes of other characters
    ],
)
def test_pairs_and_lookalikes_pass(text: str) -> None:
    body = b'{"command": "' + text.encode() + b'", "n": [1, 2]}'
    json.loads(body)  # the case is valid JSON
    check_json_body(body)


def test_what_json_dumps_writes_for_valid_text_passes() -> None:
    data = {"messages": [{"role": "user", "content": 'x \U0001f600 \u00e9 [ { ] } \\ud800 " \\'}] * 100}
    check_json_body(json.dumps(data).encode())
    check_json_body(json.dumps(data, ensure_ascii=False).encode())


def test_a_surrogate_in_a_body_sent_as_utf16_is_found() -> None:
    assert refusal('{"command": "a\\ud800"}'.encode("utf-16")) == ("command", LONE)


# --- depth --------------------------------------------------------------------------------------


def test_a_body_at_the_limit_passes_and_one_level_more_is_refused() -> None:
    check_json_body(nested(MAX_JSON_DEPTH))
    field, message = refusal(nested(MAX_JSON_DEPTH + 1))
    assert message == DEEP
    assert field == "options" + ".a" * (MAX_JSON_DEPTH - 1)  # level 65: 64 steps from the top


def test_arrays_count_as_levels_and_their_indexes_name_the_field() -> None:
    body = b'{"x": [1, {"y": "' + b"[" * 500 + b'"}, ' + b"[" * 200 + b"0" + b"]" * 200 + b"]}"
    field, message = refusal(body)
    assert message == DEEP
    assert field == "x[2]" + "[0]" * (MAX_JSON_DEPTH - 2)


def test_the_first_too_deep_field_in_document_order_is_named() -> None:
    deep = b"[" * 70 + b"]" * 70
    body = b'{"a": 1, "b": ' + deep + b', "c": ' + deep + b', "a": ' + deep + b"}"
    field, _ = refusal(body)
    assert field is not None and field.startswith("b[0]")


def test_brackets_and_escaped_quotes_inside_strings_do_not_count() -> None:
    text = '[{\\"[[{' * 200
    check_json_body(('{"command": "' + text + '", "list": [[["ok"]]]}').encode())
    check_json_body(('{"k' + "[" * 100 + '": ["' + "]" * 100 + '"]}').encode())


def test_keys_with_brackets_and_quotes_are_named_as_they_are() -> None:
    body = b'{"s": "[[\\"{{", "b": ["x", ' + b'{"k\\"[": ' * 70 + b"1" + b"}" * 70 + b"]}"
    field, message = refusal(body)
    assert message == DEEP
    assert field == "b[1]" + '.k"[' * (MAX_JSON_DEPTH - 2)  # b: level 2, its [1]: level 3


def test_nesting_far_past_the_recursion_limit_is_refused_without_recursion() -> None:
    assert refusal(b"[" * 200_000 + b"]" * 200_000) == ("[0]" * MAX_JSON_DEPTH, DEEP)
    assert refusal(b'{"x": ' + b"[" * 200_000) == ("x" + "[0]" * (MAX_JSON_DEPTH - 1), DEEP)


def test_a_smaller_limit_can_be_asked_for() -> None:
    check_json_body(b'{"a": {"b": 1}}', max_depth=2)
    with pytest.raises(InvalidInputError) as info:
        check_json_body(b'{"a": {"b": [1]}}', max_depth=2)
    assert info.value.field == "a.b"


# --- what the routes answer themselves ----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"command": "\\ud800"',  # cut short
        b'{"command": "\\ud800}',  # unterminated string
        b'{"a": [1,}' + b"[" * 100,  # broken before it gets deep
        b"\xff\xfe\x00",
        b'{"command": "\xed\xa0\x80"}',  # a raw surrogate: not UTF-8
    ],
)
def test_malformed_json_is_left_to_the_route(body: bytes) -> None:
    check_json_body(body)


# --- speed ----------------------------------------------------------------------------------------


def test_ordinary_bodies_pass_on_a_scan_of_their_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the body was looked at more closely")

    monkeypatch.setattr(json_checks, "_Scan", never)
    monkeypatch.setattr(json_checks.json, "loads", never)
    texts = ["open chrome \u00e9 \U0001f600"] * 5000
    check_json_body(json.dumps({"commands": texts}, ensure_ascii=False).encode())
    check_json_body(json.dumps({"messages": [{"role": "user", "content": "hi"}] * 30}).encode())


def test_large_valid_bodies_are_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a valid body was parsed")

    monkeypatch.setattr(json_checks.json, "loads", never)
    # many containers (a long chat, lists of lists), brackets in text and escaped emoji: the
    # closer look, no parse
    check_json_body(json.dumps({"commands": ["open [chrome] {now}"] * 20_000}).encode())
    check_json_body(json.dumps({"messages": [{"role": "user", "content": "a \U0001f600"}] * 20_000}).encode())
    check_json_body(json.dumps({"input": [[i, i + 1] for i in range(200_000)]}).encode())


def cpu_seconds(action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        with contextlib.suppress(InvalidInputError):
            action()
        best = min(best, time.process_time() - started)
    return best


def test_the_closer_look_costs_less_than_parsing_the_body() -> None:
    """A 4 MB body of a million small containers: the check takes less CPU than json.loads
    (which every route does anyway); measured ~10x less. CPU time, so a busy machine does not count."""
    body = b"[" + b"[0]," * 1_000_000 + b"[1]]"
    cpu_seconds(lambda: check_json_body(b"[" * 70))  # numpy's import, once
    assert cpu_seconds(lambda: check_json_body(body)) < cpu_seconds(lambda: json.loads(body))
