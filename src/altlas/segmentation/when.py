"""`when_iso`: a schedule's time expression resolved against the request's clock and zone.

The `when` parameter keeps the expression as written ("yarın 14.30'da", "next Tuesday at
4 pm"); this stage reads it and adds `when_iso`, an ISO 8601 date-time with the zone's
offset ("2025-03-13T14:30:00+03:00"), or a date alone ("2025-03-13") when the expression
names a day but no time ("tomorrow", "salı günü"). It runs after segmentation (the plan is
complete, modes applied), so it can be left out or run again with another clock.

What it reads (English and Turkish, any combination of one day, one clock time and
nothing else):

- days: today, tonight, tomorrow, the day after tomorrow / bugün, bu akşam, yarın, öbür gün;
  weekdays ("Friday", "on Friday", "this Friday", "salı günü", "cumaya": the next one after
  today; "next Tuesday", "haftaya salı", "gelecek salı": that day of the next week, weeks
  starting on Monday); dates ("March 20", "20th of March", "20 Mart", "2025-03-20": this
  year's unless it has passed, then next year's);
- clock times: "4 pm", "16:00", "14.30'da", "at 9", "saat 9'da", with a part of the day
  ("sabah 9", "akşam 8", "öğleden sonra 3", "gece 11", "9 in the evening"), noon, midnight.
  A bare hour without minutes or am/pm is read in working hours: 1-6 are afternoon (at 4 ->
  16:00), 7-12 as written; "14.30", "6:30" with minutes are 24-hour times. A time without
  a day is its next occurrence (today if still ahead, else tomorrow);
- durations from now: "in two hours", "in 30 minutes", "iki saat sonra", "yarım saat sonra",
  "30 dakika içinde", "an hour and a half"; days, weeks, months, years give a date.

Hours and minutes are added to the absolute time (two hours after 01:30 on the night the
clocks go forward is 04:30); a clock time on a day is that wall-clock time in the zone: one
that does not exist (skipped by a DST change) moves forward by the gap, one that happens
twice is the first. Anything else in the expression (every, until, before, ago, end of,
next week, a second day or time) leaves `when_iso` out: absent when unsure.
"""

from __future__ import annotations

import calendar
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from altlas.errors import InvalidInputError
from altlas.plans.model import AltFile, Language, Parameter, TaskType
from altlas.segmentation.text import fold

__all__ = ["TimeReference", "add_when_iso", "resolve_when", "zone_named"]

WHEN_ISO_DESCRIPTION = "The time expression resolved to ISO 8601 (date-time with offset, or a date)"


@dataclass(frozen=True, slots=True)
class TimeReference:
    """The clock a request's time expressions are read against: `now`, aware, in `zone`."""

    now: datetime
    zone: tzinfo

    @classmethod
    def of(
        cls,
        now: str | datetime | None = None,
        timezone: str | tzinfo | None = None,
        *,
        default_zone: tzinfo | None = None,
    ) -> TimeReference:
        """From a request's optional `now` (ISO 8601) and `timezone` (IANA name); errors name
        the field. Defaults: the server's clock; the zone named, else now's offset, else
        `default_zone` or the server's zone. A `now` without an offset is a wall-clock time
        in that zone."""
        moment = _moment(now) if now is not None else None
        zone: tzinfo
        if timezone is not None:
            zone = zone_named(timezone)
        elif moment is not None and moment.tzinfo is not None:
            zone = moment.tzinfo
        else:
            zone = default_zone or _server_zone()
        try:
            if moment is None:
                moment = datetime.now(zone)
            elif moment.tzinfo is None:
                moment = _wall_clock(moment.date(), moment.timetz(), zone)
            else:
                moment = moment.astimezone(zone)
        except (OverflowError, ValueError):
            raise InvalidInputError("is out of the range of dates this server reads", field="now") from None
        return cls(moment, zone)


def zone_named(name: object) -> tzinfo:
    """The time zone of an IANA name (an InvalidInputError naming `timezone` if there is none)."""
    if isinstance(name, tzinfo):
        return name
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("must be an IANA time zone name such as Europe/Istanbul", field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInputError(
            f"is not a known IANA time zone: {name[:64]!r} (e.g. Europe/Istanbul, UTC)", field="timezone"
        ) from None


def _moment(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            pass
    raise InvalidInputError("must be an ISO 8601 date-time such as 2025-03-12T10:00:00+03:00", field="now")


def _server_zone() -> tzinfo:
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return datetime.now().astimezone().tzinfo or UTC


def _wall_clock(day: date, clock: time, zone: tzinfo) -> datetime:
    """`clock` on `day` in `zone`; a time skipped by a DST change moves forward by the gap."""
    local = datetime.combine(day, clock.replace(tzinfo=None), tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone)


def add_when_iso(plan: AltFile, reference: TimeReference | None = None) -> AltFile:
    """Add `when_iso` after `when` in each schedule segment whose time can be resolved."""
    for segment in plan.segments:
        if segment.task_type is not TaskType.SCHEDULE or segment.parameter("when_iso") is not None:
            continue
        when = segment.parameter("when")
        if when is None or not isinstance(when.value, str):
            continue
        reference = reference or TimeReference.of()
        resolved = resolve_when(when.value, plan.language, reference)
        if resolved is not None:
            at = segment.parameters.index(when) + 1
            segment.parameters.insert(at, Parameter("when_iso", resolved, description=WHEN_ISO_DESCRIPTION))
    return plan


# --- Reading an expression -------------------------------------------------------------

_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
    "bir": 1, "iki": 2, "uc": 3, "dort": 4, "bes": 5, "alti": 6, "yedi": 7, "sekiz": 8,
    "dokuz": 9, "on": 10, "yirmi": 20, "otuz": 30, "kirk": 40, "elli": 50, "altmis": 60, "doksan": 90,
}  # fmt: skip
_UNITS = {
    "second": "seconds", "sec": "seconds", "minute": "minutes", "min": "minutes", "hour": "hours",
    "hr": "hours", "day": "days", "week": "weeks", "month": "months", "year": "years",
    "saniye": "seconds", "dakika": "minutes", "dk": "minutes", "saat": "hours", "gun": "days",
    "hafta": "weeks", "ay": "months", "yil": "years",
}  # fmt: skip
_WEEKDAYS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
    "pazartesi": 0, "sali": 1, "carsamba": 2, "persembe": 3, "cuma": 4, "cumartesi": 5, "pazar": 6,
}  # fmt: skip
_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12, "jan": 1, "feb": 2,
    "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11,
    "dec": 12, "ocak": 1, "subat": 2, "mart": 3, "nisan": 4, "mayis": 5, "haziran": 6, "temmuz": 7,
    "agustos": 8, "eylul": 9, "ekim": 10, "kasim": 11, "aralik": 12,
}  # fmt: skip
# Parts of the day: (name, offset rule). "pm": hours 1-11 move to the afternoon.
_PERIODS = {
    "morning": "am", "sabah": "am", "sabahleyin": "am", "afternoon": "pm", "evening": "pm",
    "aksam": "pm", "aksamleyin": "pm", "ogleden sonra": "pm", "night": "night", "gece": "night",
    "geceleyin": "night", "tonight": "pm", "ogle": "noon", "oglen": "noon", "ogleyin": "noon",
}  # fmt: skip
# Words that carry nothing once the rest is read.
_COMMA = re.compile(r",(?!\d)")  # a list comma, not a decimal one ("1,5 saat")
_GLUE = frozenset("at on the of in by around about for saat de da".split())

_NUM = r"(?:\d+(?:[.,]5)?|" + "|".join(sorted(_NUMBERS, key=len, reverse=True)) + r")"
_UNIT = r"(?:" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")"
_SUFFIX = r"(?:'?[a-z]+)?"  # a Turkish case ending: 14.30'da, saat 9'da, cumaya
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern))
    for name, pattern in [
        ("unsure", r"\b(?:every|each|daily|weekly|monthly|hourly|until|till|before|ago|since|end|"
                   r"last|weekend|her|boyunca|once|kadar|sonu|sonuna|sonunda|gecen|yesterday|dun)\b"),
        ("duration_half", r"\b(?:in )?(?:half an hour|yarim saat)(?: (?:from now|later|sonra|icinde))?"),
        ("duration_and_half", r"\b(?:in )?(?P<n>" + _NUM + r")(?: (?P<unit>" + _UNIT + r")s?)?"
                              r" (?:and a half|bucuk)(?: (?P<unit2>" + _UNIT + r")s?)?"
                              r"(?: (?:from now|later|sonra|icinde))?"),
        ("duration", r"\b(?:(?:in|within|after) )?(?P<n>" + _NUM + r")(?: (?P<n2>" + _NUM + r"))?"
                     r" (?P<unit>" + _UNIT + r")(?:s|\w*)?(?P<tail> from now| later| sonra| icinde)?\b"),
        ("day_after", r"\b(?:the )?day after tomorrow\b|\b(?:obur|ertesi) gun\b|\byarindan sonra\b"),
        ("iso_date", r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?:[t ](?P<hh>\d{2}):(?P<mm>\d{2}))?\b"),
        ("date_dm", r"\b(?:the )?(?P<d>\d{1,2})(?:st|nd|rd|th)?(?: of)? (?P<month>[a-z]+)" + _SUFFIX
                    + r"(?: (?P<y>\d{4}))?\b"),
        ("date_md", r"\b(?P<month>[a-z]+) (?P<d>\d{1,2})(?:st|nd|rd|th)?(?:,? (?P<y>\d{4}))?\b"),
        ("weekday", r"\b(?:(?P<which>next|this|coming|haftaya|gelecek|onumuzdeki|bu) )?(?P<day>"
                    + "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
                    + r")(?:s|'?(?:y?[ae]|[dt][ae]|y?[iu]))?(?: gun[iu](?:n[ae]|nd[ae])?)?\b"),
        ("clock", r"\b(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))? ?(?P<ampm>am|pm|o'clock)?" + _SUFFIX
                  + r"(?= |$)"),
        ("noon", r"\b(?:noon|midday|oglen|ogle vakti)\b"),
        ("midnight", r"\b(?:midnight|gece yarisi)" + _SUFFIX),
        ("period", r"\b(?:in the |this |bu |yarin |tomorrow )?(?P<p>ogleden sonra|morning|afternoon|"
                   r"evening|night|tonight|sabahleyin|sabah|aksamleyin|aksam|geceleyin|gece|ogleyin)"
                   + _SUFFIX),
        ("today", r"\b(?:today|bugun)" + _SUFFIX),
        ("tomorrow", r"\b(?:tomorrow|yarin)" + _SUFFIX),
        ("now", r"\b(?:now|right now|simdi)\b"),
    ]
]  # fmt: skip


@dataclass(slots=True)
class _Reading:
    day: date | None = None
    clock: tuple[int, int] | None = None
    clock_literal: bool = False  # written with minutes or am/pm: no working-hours guess
    period: str | None = None
    delta: timedelta | None = None
    months: int = 0
    unsure: bool = False
    parts: list[str] = field(default_factory=list)

    def set_day(self, day: date) -> None:
        if self.day is not None and self.day != day:
            self.unsure = True
        self.day = day


def resolve_when(text: str, language: Language | str, reference: TimeReference) -> str | None:
    """ISO 8601 for a time expression, or None when it is not sure (see the module doc)."""
    try:
        return _resolve(_reading_of(text, reference.now.date()), reference)
    except (OverflowError, ValueError):  # past year 9999 or before year 1
        return None


def _reading_of(text: str, today: date) -> _Reading | None:
    """What the expression says, or None when some of it is not understood."""
    folded = fold(text).replace("a.m.", "am").replace("p.m.", "pm")
    rest = " ".join(_COMMA.sub(" ", folded).split())
    reading = _Reading()
    for name, pattern in _RULES:

        def take(m: re.Match[str], name: str = name) -> str:
            return _read(name, m, reading, today) or " "

        rest = pattern.sub(take, rest)
        if reading.unsure:
            return None
    leftover = [w for w in rest.split() if w not in _GLUE]
    return None if leftover or not reading.parts else reading


def _read(name: str, m: re.Match[str], r: _Reading, today: date) -> str | None:
    """Take one match into the reading; return the match text to leave it unread."""
    handler = _HANDLERS[name]
    if not handler(m, r, today):
        return m.group(0)
    r.parts.append(name)
    return None


def _unsure(m: re.Match[str], r: _Reading, today: date) -> bool:
    r.unsure = True
    return True


def _number(words: str | None) -> float | None:
    if words is None:
        return None
    value = _NUMBERS.get(words)
    if value is not None:
        return float(value)
    try:
        return float(words.replace(",", "."))
    except ValueError:
        return None


def _add_duration(r: _Reading, amount: float, unit: str) -> bool:
    kind = _UNITS[unit]
    if kind in ("months", "years"):
        if amount != int(amount):
            return False
        r.months += int(amount) * (12 if kind == "years" else 1)
        return True
    step = timedelta(**{kind: amount})
    r.delta = step if r.delta is None else r.delta + step
    return True


def _duration_half(m: re.Match[str], r: _Reading, today: date) -> bool:
    return _add_duration(r, 0.5, "hour")


def _duration_and_half(m: re.Match[str], r: _Reading, today: date) -> bool:
    unit = m.group("unit") or m.group("unit2")
    amount = _number(m.group("n"))
    if unit is None or amount is None:
        return False
    return _add_duration(r, amount + 0.5, unit)


def _duration(m: re.Match[str], r: _Reading, today: date) -> bool:
    amount = _number(m.group("n"))
    extra = _number(m.group("n2")) if m.group("n2") else 0.0
    if amount is None or extra is None:
        return False
    text = m.group(0)
    if not (text.startswith(("in ", "within ", "after ")) or m.group("tail")):
        return False  # "2 hours" alone: a length, not a time
    return _add_duration(r, amount + extra, m.group("unit"))


def _day_after(m: re.Match[str], r: _Reading, today: date) -> bool:
    r.set_day(today + timedelta(days=2))
    return True


def _iso_date(m: re.Match[str], r: _Reading, today: date) -> bool:
    try:
        r.set_day(date(int(m.group("y")), int(m.group("m")), int(m.group("d"))))
    except ValueError:
        r.unsure = True
        return True
    if m.group("hh"):
        _set_clock(r, int(m.group("hh")), int(m.group("mm")), literal=True)
    return True


def _calendar_date(m: re.Match[str], r: _Reading, today: date) -> bool:
    month = _MONTHS.get(m.group("month"))
    if month is None:
        return False
    day, year = int(m.group("d")), m.group("y")
    try:
        when = date(int(year) if year else today.year, month, day)
        if not year and when < today:
            when = date(today.year + 1, month, day)
    except ValueError:
        r.unsure = True
        return True
    r.set_day(when)
    return True


def _weekday(m: re.Match[str], r: _Reading, today: date) -> bool:
    weekday = _WEEKDAYS.get(m.group("day"))
    if weekday is None:
        return False
    which = m.group("which")
    if which in ("next", "haftaya", "gelecek"):  # that day of the next week
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=1)
        r.set_day(monday + timedelta(days=weekday))
    else:
        ahead = (weekday - today.weekday()) % 7
        if ahead == 0 and which not in ("this", "bu"):
            ahead = 7
        r.set_day(today + timedelta(days=ahead))
    return True


def _set_clock(r: _Reading, hour: int, minute: int, *, literal: bool) -> bool:
    if r.clock is not None or not (0 <= hour <= 24 and 0 <= minute < 60):
        r.unsure = True
        return True
    r.clock = (hour % 24, minute)
    r.clock_literal = literal
    return True


def _clock(m: re.Match[str], r: _Reading, today: date) -> bool:
    hour = int(m.group("h"))
    minute = int(m.group("m") or 0)
    ampm = m.group("ampm")
    if ampm in ("am", "pm"):
        if not 1 <= hour <= 12:
            r.unsure = True
            return True
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    literal = ampm in ("am", "pm") or m.group("m") is not None or m.group("h").startswith("0") or hour > 12
    return _set_clock(r, hour, minute, literal=literal)


def _noon(m: re.Match[str], r: _Reading, today: date) -> bool:
    return _set_clock(r, 12, 0, literal=True)


def _midnight(m: re.Match[str], r: _Reading, today: date) -> bool:
    if r.day is not None:  # "tomorrow at midnight": which end of the day is meant is unclear
        r.unsure = True
        return True
    r.set_day(today + timedelta(days=1))
    return _set_clock(r, 0, 0, literal=True)


def _period(m: re.Match[str], r: _Reading, today: date) -> bool:
    text, period = m.group(0), _PERIODS[m.group("p")]
    if text.startswith(("yarin ", "tomorrow ")):
        r.set_day(today + timedelta(days=1))
    elif text.startswith(("this ", "bu ")) or m.group("p") == "tonight":
        r.set_day(today)
    if r.period is not None and r.period != period:
        r.unsure = True
    r.period = period
    return True


def _today(m: re.Match[str], r: _Reading, today: date) -> bool:
    r.set_day(today)
    return True


def _tomorrow(m: re.Match[str], r: _Reading, today: date) -> bool:
    r.set_day(today + timedelta(days=1))
    return True


def _now(m: re.Match[str], r: _Reading, today: date) -> bool:
    return _add_duration(r, 0, "minute")


_HANDLERS = {
    "unsure": _unsure,
    "duration_half": _duration_half,
    "duration_and_half": _duration_and_half,
    "duration": _duration,
    "day_after": _day_after,
    "iso_date": _iso_date,
    "date_dm": _calendar_date,
    "date_md": _calendar_date,
    "weekday": _weekday,
    "clock": _clock,
    "noon": _noon,
    "midnight": _midnight,
    "period": _period,
    "today": _today,
    "tomorrow": _tomorrow,
    "now": _now,
}


def _hour_of_day(r: _Reading) -> tuple[int, int, int] | None:
    """(hour, minute, days to add) of the reading's clock time, given its part of the day."""
    assert r.clock is not None
    hour, minute = r.clock
    if r.period == "noon":
        return (hour + 12, minute, 0) if 1 <= hour <= 6 and not r.clock_literal else (hour, minute, 0)
    if r.period == "am":
        return (0 if hour == 12 else hour, minute, 0) if hour <= 12 else None
    if r.period == "pm":
        return (hour + 12 if hour < 12 else hour, minute, 0)
    if r.period == "night":
        if hour < 5:
            return hour, minute, 1  # "gece 2": the small hours after that day
        return (hour + 12 if hour < 12 else hour, minute, 0)
    if not r.clock_literal and 1 <= hour <= 6:
        return hour + 12, minute, 0  # working hours: "at 4" is 16:00
    return hour, minute, 0


def _resolve(r: _Reading | None, reference: TimeReference) -> str | None:
    if r is None:
        return None
    now = reference.now.replace(microsecond=0)
    if r.delta is not None and (r.day is not None or r.clock is not None or r.months):
        if r.delta >= timedelta(days=1) and r.clock is not None and r.day is None and not r.months:
            day = now.date() + timedelta(days=r.delta.days)
            return _at(r, day, reference)
        return None  # "tomorrow in two hours": two readings of one time
    if r.delta is not None:
        if r.delta % timedelta(days=1) == timedelta(0) and r.delta > timedelta(0):
            return (now.date() + r.delta).isoformat()  # "in 3 days": a day, not a time
        return (now.astimezone(UTC) + r.delta).astimezone(reference.zone).isoformat(timespec="seconds")
    if r.months:
        if r.day is not None:
            return None
        day = _add_months(now.date(), r.months)
        return _at(r, day, reference) if r.clock is not None else day.isoformat()
    if r.clock is None:
        if r.day is None:
            return None
        return r.day.isoformat()
    return _at(r, r.day, reference)


def _at(r: _Reading, day: date | None, reference: TimeReference) -> str | None:
    clock = _hour_of_day(r)
    if clock is None:
        return None
    hour, minute, later = clock
    if hour >= 24:
        return None
    if day is None:  # the next time the clock shows it
        candidate = _wall_clock(
            reference.now.date() + timedelta(days=later), time(hour, minute), reference.zone
        )
        if candidate <= reference.now:
            candidate = _wall_clock(candidate.date() + timedelta(days=1), time(hour, minute), reference.zone)
        return candidate.isoformat(timespec="seconds")
    return _wall_clock(day + timedelta(days=later), time(hour, minute), reference.zone).isoformat(
        timespec="seconds"
    )


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
