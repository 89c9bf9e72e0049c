"""when_iso: time expressions resolved against a fixed clock and zone (DST edges included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from altlas.errors import InvalidInputError
from altlas.segmentation import segment_command
from altlas.segmentation.when import TimeReference, add_when_iso, resolve_when

# Wednesday 12 March 2025, 10:00 in Istanbul (UTC+3 all year) and New York (EDT since 9 March).
ISTANBUL = TimeReference.of("2025-03-12T10:00:00+03:00", "Europe/Istanbul")
NEW_YORK = TimeReference.of("2025-03-12T10:00:00-04:00", "America/New_York")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yarın 14.30'da", "2025-03-13T14:30:00+03:00"),
        ("iki saat sonra", "2025-03-12T12:00:00+03:00"),
        ("30 dakika sonra", "2025-03-12T10:30:00+03:00"),
        ("yarım saat sonra", "2025-03-12T10:30:00+03:00"),
        ("bir buçuk saat sonra", "2025-03-12T11:30:00+03:00"),
        ("1,5 saat sonra", "2025-03-12T11:30:00+03:00"),
        ("on beş dakika içinde", "2025-03-12T10:15:00+03:00"),
        ("salı günü", "2025-03-18"),
        ("salı günü saat 10'da", "2025-03-18T10:00:00+03:00"),
        ("haftaya salı akşam 8'de", "2025-03-18T20:00:00+03:00"),
        ("haftaya pazartesi", "2025-03-17"),
        ("cumaya", "2025-03-14"),
        ("cuma günü öğleden sonra 3'te", "2025-03-14T15:00:00+03:00"),
        ("bugün", "2025-03-12"),
        ("bugün saat 17:00'de", "2025-03-12T17:00:00+03:00"),
        ("bu akşam", "2025-03-12"),
        ("yarın sabah 9", "2025-03-13T09:00:00+03:00"),
        ("öbür gün sabah 9'da", "2025-03-14T09:00:00+03:00"),
        ("akşam 8", "2025-03-12T20:00:00+03:00"),
        ("gece 11'de", "2025-03-12T23:00:00+03:00"),
        ("gece 2'de", "2025-03-13T02:00:00+03:00"),
        ("saat 9'da", "2025-03-13T09:00:00+03:00"),  # 9:00 has passed: tomorrow's
        ("saat 3'te", "2025-03-12T15:00:00+03:00"),  # a bare 3 is in working hours: 15:00
        ("2 gün sonra saat 10'da", "2025-03-14T10:00:00+03:00"),
        ("20 Mart", "2025-03-20"),
        ("5 Mart", "2026-03-05"),  # passed this year: next year's
    ],
)
def test_turkish_forms(text: str, expected: str) -> None:
    assert resolve_when(text, "tr", ISTANBUL) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tomorrow at 9 am", "2025-03-13T09:00:00-04:00"),
        ("next Tuesday at 4 pm", "2025-03-18T16:00:00-04:00"),
        ("on Friday at 10:00", "2025-03-14T10:00:00-04:00"),
        ("Friday", "2025-03-14"),
        ("this Wednesday", "2025-03-12"),
        ("Wednesday", "2025-03-19"),  # a bare weekday is the next one after today
        ("in two hours", "2025-03-12T12:00:00-04:00"),
        ("in 30 minutes", "2025-03-12T10:30:00-04:00"),
        ("in an hour and a half", "2025-03-12T11:30:00-04:00"),
        ("in half an hour", "2025-03-12T10:30:00-04:00"),
        ("two hours from now", "2025-03-12T12:00:00-04:00"),
        ("in 3 days", "2025-03-15"),
        ("in a month", "2025-04-12"),
        ("tonight at 8 pm", "2025-03-12T20:00:00-04:00"),
        ("at 9 in the evening", "2025-03-12T21:00:00-04:00"),
        ("at 4", "2025-03-12T16:00:00-04:00"),
        ("at 16:00", "2025-03-12T16:00:00-04:00"),
        ("6:30 am", "2025-03-13T06:30:00-04:00"),
        ("at noon", "2025-03-12T12:00:00-04:00"),
        ("at midnight", "2025-03-13T00:00:00-04:00"),
        ("the day after tomorrow at 6:30 am", "2025-03-14T06:30:00-04:00"),
        ("March 20 at 3 pm", "2025-03-20T15:00:00-04:00"),
        ("the 20th of March", "2025-03-20"),
        ("2025-04-01 09:00", "2025-04-01T09:00:00-04:00"),
        ("tomorrow morning", "2025-03-13"),
        ("by 5 p.m.", "2025-03-12T17:00:00-04:00"),
    ],
)
def test_english_forms(text: str, expected: str) -> None:
    assert resolve_when(text, "en", NEW_YORK) == expected


@pytest.mark.parametrize(
    "text",
    [
        "every Monday at 9 am", "daily", "next week", "until Friday", "before 5 pm", "two hours ago",
        "end of the month", "tomorrow in two hours", "Monday at 3 pm and Tuesday", "at 25:00",
        "her gün", "haftaya", "gün sonuna kadar", "iki saat önce", "yarın ve cuma", "someday soon",
    ],
)  # fmt: skip
def test_unsure_expressions_give_nothing(text: str) -> None:
    assert resolve_when(text, "en", NEW_YORK) is None


def test_hours_pass_in_absolute_time_across_the_spring_gap() -> None:
    # Berlin: on 30 March 2025 the clocks go from 02:00 to 03:00.
    night = TimeReference.of("2025-03-30T01:30:00", "Europe/Berlin")
    assert night.now.utcoffset() == timedelta(hours=1)
    assert resolve_when("in two hours", "en", night) == "2025-03-30T04:30:00+02:00"
    assert resolve_when("in 30 minutes", "en", night) == "2025-03-30T03:00:00+02:00"


def test_a_skipped_wall_clock_time_moves_forward_by_the_gap() -> None:
    evening = TimeReference.of("2025-03-29T20:00:00", "Europe/Berlin")
    assert resolve_when("tomorrow at 2:30 am", "en", evening) == "2025-03-30T03:30:00+02:00"
    assert resolve_when("tomorrow at 9 am", "en", evening) == "2025-03-30T09:00:00+02:00"


def test_a_repeated_wall_clock_time_is_its_first_occurrence() -> None:
    # Berlin: on 26 October 2025 02:00-03:00 happens twice (first +02:00, then +01:00).
    evening = TimeReference.of("2025-10-25T20:00:00", "Europe/Berlin")
    assert resolve_when("tomorrow at 2:30 am", "en", evening) == "2025-10-26T02:30:00+02:00"
    assert resolve_when("tomorrow at 9 am", "en", evening) == "2025-10-26T09:00:00+01:00"
    night = TimeReference.of("2025-10-26T01:30:00+02:00", "Europe/Berlin")
    assert resolve_when("in two hours", "en", night) == "2025-10-26T02:30:00+01:00"


def test_the_reference_takes_the_zone_then_nows_offset_then_the_servers() -> None:
    named = TimeReference.of("2025-03-12T07:00:00Z", "Europe/Istanbul")
    assert named.now.isoformat() == "2025-03-12T10:00:00+03:00"
    offset = TimeReference.of("2025-03-12T10:00:00+05:30")
    assert resolve_when("in an hour", "en", offset) == "2025-03-12T11:00:00+05:30"
    wall_clock = TimeReference.of("2025-07-01T10:00:00", "America/New_York")
    assert wall_clock.now.isoformat() == "2025-07-01T10:00:00-04:00"
    server = TimeReference.of()
    assert server.now.tzinfo is not None
    assert abs(server.now - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("now", "zone", "field"),
    [
        ("not a date", None, "now"),
        ("2025-13-01T00:00:00", None, "now"),
        ("0001-01-01T00:00:00+14:00", "UTC", "now"),
        (None, "Mars/Olympus_Mons", "timezone"),
        (None, "../../etc/passwd", "timezone"),
        (None, "", "timezone"),
    ],
)
def test_bad_references_name_their_field(now: str | None, zone: str | None, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        TimeReference.of(now, zone)
    assert caught.value.field == field


def test_schedule_segments_get_when_iso_after_when() -> None:
    plan = add_when_iso(segment_command("Yarın 14.30'da toplantıyı hatırlat"), ISTANBUL)
    names = [p.name for p in plan.segments[0].parameters]
    assert names.index("when_iso") == names.index("when") + 1
    value = plan.segments[0].parameter("when_iso")
    assert value is not None and value.value == "2025-03-13T14:30:00+03:00" and value.type.value == "string"


def test_only_schedule_segments_and_only_sure_times_get_when_iso() -> None:
    send = add_when_iso(segment_command("Send the report to Ali tomorrow"), NEW_YORK)
    assert send.segments[0].parameter("when") is not None
    assert send.segments[0].parameter("when_iso") is None
    unsure = add_when_iso(segment_command("Remind me every Monday at 9 am to send the report"), NEW_YORK)
    assert unsure.segments[0].parameter("when_iso") is None


def test_far_dates_give_nothing_rather_than_fail() -> None:
    edge = TimeReference.of("9999-12-31T23:00:00", "UTC")
    assert resolve_when("in two hours", "en", edge) is None
    assert resolve_when("tomorrow at 9", "en", edge) is None
