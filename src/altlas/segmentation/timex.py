"""Time expressions as written ("tomorrow at 9am", "yarın saat 9'da", "in two hours").

Patterns run on folded text (see `text.fold`), whose offsets equal the command's,
and neighbouring matches ("tomorrow" + "at 9am") are joined into one span.
"""

from __future__ import annotations

import re

__all__ = ["find_time_spans"]

_NUM_EN = r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|fifteen|twenty|thirty|half an?)"
_UNIT_EN = r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)"
_DAY_EN = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekday|weekend)s?"
_MONTH_EN = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)"
)
_CLOCK = r"\d{1,2}(?:[:.]\d{2})?"

_EN = [
    r"\b(?:tomorrow|today|tonight|yesterday)\b",
    r"\b(?:this|next|every|each) (?:morning|afternoon|evening|night|week|weekend|month|year|day|hour|"
    + _DAY_EN
    + r")\b",
    r"\b(?:on |by |until |before |after |next |every )?"
    + _DAY_EN
    + r"(?: (?:morning|afternoon|evening|night))?\b",
    r"\b(?:in|within|after|for|every) " + _NUM_EN + r" " + _UNIT_EN + r"\b",
    r"\b" + _NUM_EN + r" " + _UNIT_EN + r" (?:from now|later|ago)\b",
    r"\b(?:at|by|before|after|until|around|from) " + _CLOCK + r"\s?(?:am|pm|a\.m\.|p\.m\.|o'clock)?(?=\W|$)",
    r"\b" + _CLOCK + r"\s?(?:am|pm|a\.m\.|p\.m\.)(?=\W|$)",
    r"\b(?:at|by|around) (?:noon|midnight|midday)\b",
    r"\b\d{1,2}:\d{2}\b",
    r"\b(?:on |by |before |until )?(?:the )?\d{1,2}(?:st|nd|rd|th)?(?: of)? " + _MONTH_EN + r"(?: \d{4})?\b",
    r"\b(?:on |by |before |until )?" + _MONTH_EN + r" \d{1,2}(?:st|nd|rd|th)?(?:,? \d{4})?\b",
    r"\b(?:on |by |before |until )?\d{4}-\d{2}-\d{2}(?:[ t]\d{2}:\d{2})?\b",
    r"\b(?:on |by |before |until )?\d{1,2}/\d{1,2}(?:/\d{2,4})?\b",
    r"\b(?:by |at )?(?:the )?end of (?:the )?(?:day|week|month|year)\b",
    r"\b(?:in the )?(?:morning|afternoon|evening)\b",
    r"\b(?:daily|weekly|monthly|hourly|yearly|annually)(?=\s*$|\s*[,.;!?])",
]

_NUM_TR = r"(?:\d+|bir|iki|uc|dort|bes|alti|yedi|sekiz|dokuz|on|yirmi|otuz|kirk|elli|yarim)"
_UNIT_TR = r"(?:saniye|dakika|dk|saat|gun|hafta|ay|yil)"
# A weekday with a case ending, not any word it starts ("pazarlama" is marketing).
_DAY_TR = (
    r"(?:pazartesi|sali|carsamba|persembe|cumartesi|cuma|pazar)"
    r"(?:'?(?:y?[ae]|[dt][ae]|[dt][ae]n|y?[iu]|l[ae]r[iu]?))?(?: gun[iu](?:n[ae]|nd[ae])?)?"
)
# Case endings of a day word; "yarınki", "bugünkü" (tomorrow's, today's) are no times.
_TR_SUFFIX = r"(?:'?(?:y?[ae]|[dt][ae]n|n[ae]|l[ae]r[iu]|leyin|layin|[iu]))?"
_MONTH_TR = r"(?:ocak|subat|mart|nisan|mayis|haziran|temmuz|agustos|eylul|ekim|kasim|aralik)\w*"
_PERIOD_TR = r"(?:sabah|aksam|gece|ogleden sonra|ogle|oglen|ogleyin)"
_TR = [
    r"\b" + _PERIOD_TR + r" " + _CLOCK + r"(?:'?(?:[dt][ae]|y?[ae]))?(?=\W|$)",
    r"\b(?:bugun|yarin|obur gun|ertesi gun|haftaya|simdi|bu gece|bu aksam|bu sabah|yarin sabah|"
    r"yarin aksam|yarin ogleden sonra|ogleden sonra|aksam|sabah|oglen|ogleyin|ogle|gece)"
    + _TR_SUFFIX
    + r"\b",
    r"\b(?:bu|gelecek|onumuzdeki|her|ertesi) (?:sabah|aksam|gece|gun|hafta|ay|yil|hafta ?sonu|"
    + _DAY_TR
    + r")\w*\b",
    r"\b(?:her )?" + _DAY_TR + r"\b",
    r"\b" + _NUM_TR + r" " + _UNIT_TR + r"\w* (?:sonra|icinde|once|boyunca)\b",
    r"\b" + _NUM_TR + r" " + _UNIT_TR + r"(?:da|de|ta|te) bir\b",
    r"\bsaat " + _CLOCK + r"(?:'?(?:de|da|te|ta|e|a|ye|ya|den|dan|ten|tan))?(?=\W|$)",
    r"\b" + _CLOCK + r"'(?:de|da|te|ta|e|a|ye|ya|den|dan|ten|tan)\b",
    r"\b\d{1,2}[:.]\d{2}(?=\W|$)",
    r"\b\d{1,2} " + _MONTH_TR + r"(?: \d{4})?\b",
    r"\b(?:gun|hafta|ay|yil) ?(?:sonu|sonuna|sonunda|icinde)\w*\b",
]

_EN_RE = re.compile("|".join(f"(?:{p})" for p in _EN))
_TR_RE = re.compile("|".join(f"(?:{p})" for p in _TR))
_GAP = re.compile(r"^(?:\s+|\s*,\s*|\s+(?:at|on|saat|,)\s+)$")


def find_time_spans(
    folded: str, language: str, start: int = 0, end: int | None = None
) -> list[tuple[int, int]]:
    """Character spans of time expressions in `folded[start:end]`, neighbours joined."""
    pattern = _EN_RE if language == "en" else _TR_RE
    end = len(folded) if end is None else end
    spans: list[tuple[int, int]] = []
    for match in pattern.finditer(folded, start, end):
        s, e = match.span()
        if spans and _GAP.fullmatch(folded[spans[-1][1] : s]):
            spans[-1] = (spans[-1][0], e)
        elif e > s:
            spans.append((s, e))
    return spans
