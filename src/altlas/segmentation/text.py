"""Tokens with character offsets, and the folded form every lexicon lookup uses.

Folding lower-cases the Turkish way (I -> ı, İ -> i) and then drops diacritics
(ç ğ ı ö ş ü -> c g i o s u), so "İNDİR", "indir" and the phone-typed "indir"
meet in one key, and Turkish typed without Turkish letters ("Chrome'u ac")
still matches. Folding keeps the length of the text, so offsets found in the
folded text are offsets into the original command: parameter values are cut
from the command itself and stay exact substrings of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Token", "base_of", "fold", "quoted_spans", "tokenize"]

_FOLD_TABLE = str.maketrans(
    {
        "İ": "i",
        "I": "i",
        "ı": "i",
        "Ç": "c",
        "ç": "c",
        "Ğ": "g",
        "ğ": "g",
        "Ö": "o",
        "ö": "o",
        "Ş": "s",
        "ş": "s",
        "Ü": "u",
        "ü": "u",
        "Â": "a",
        "â": "a",
        "Î": "i",
        "î": "i",
        "Û": "u",
        "û": "u",
        "’": "'",
        "‘": "'",
        "`": "'",
    }
)


def fold(text: str) -> str:
    """Lower-case and strip Turkish diacritics, keeping the length of `text`."""
    folded = text.translate(_FOLD_TABLE).lower()
    if len(folded) == len(text):
        return folded
    # A few characters lower-case into two (rare outside Turkish): fold one by one.
    return "".join(c if len(low := c.lower()) != 1 else low for c in text.translate(_FOLD_TABLE))


# A word starts with a letter or digit (or a path prefix like ~/ ./ /) and may hold
# apostrophes (Firefox'u), hyphens, @, dots, colons or slashes that sit between word
# characters (report.docx, 9:30, photos/2024) and commas between digits (1,5).
# A dot before a space or the end is a sentence end, not part of the word.
_TOKEN_RE = re.compile(
    r"(?P<word>[~./\\]*\w(?:[\w'@#%+&~-]|[.:/\\](?=\w)|(?<=\d),(?=\d))*)"
    r"|(?P<punct>\.{1,3}|[,;!?…\n])"
)


@dataclass(frozen=True, slots=True)
class Token:
    """One word or punctuation mark of a command, with its span in the command."""

    text: str  # as written
    key: str  # folded form, for lookups
    start: int
    end: int
    is_word: bool

    @property
    def base(self) -> str:
        """Folded word without the suffix after an apostrophe: firefox'u -> firefox."""
        return base_of(self.key)


def base_of(key: str) -> str:
    cut = key.find("'")
    return key if cut <= 0 else key[:cut]


def tokenize(command: str) -> list[Token]:
    """Split a command into words and punctuation marks, keeping offsets."""
    folded = fold(command)
    return [
        Token(command[m.start() : m.end()], m.group(), m.start(), m.end(), m.lastgroup == "word")
        for m in _TOKEN_RE.finditer(folded)
    ]


# "...", “...”, «...» and '...' (an opening ' follows no letter, so Ali's is no quote;
# apostrophes inside the quote, as in 'I'll be late', are allowed).
_QUOTED = re.compile(r"\"[^\"]+\"|“[^”]+”|«[^»]+»|(?<![\w'])'[^']+(?:'\w+[^']*)*'(?![\w'])")


def quoted_spans(command: str) -> list[tuple[int, int]]:
    """Character spans of quoted text in a command."""
    return [m.span() for m in _QUOTED.finditer(command)]
