"""Sets of multi-word phrases, matched against folded words quickly (indexed by first and last word)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from altlas.segmentation.text import Token

__all__ = ["PhraseSet"]


class PhraseSet:
    def __init__(self, phrases: Iterable[tuple[str, ...]]) -> None:
        longest_first = sorted(set(phrases), key=len, reverse=True)
        self._by_first: dict[str, list[tuple[str, ...]]] = {}
        self._by_last: dict[str, list[tuple[str, ...]]] = {}
        for phrase in longest_first:
            self._by_first.setdefault(phrase[0], []).append(phrase)
            self._by_last.setdefault(phrase[-1], []).append(phrase)

    def length_at(self, words: Sequence[Token], i: int) -> int:
        """Words in the longest phrase starting at words[i] (0 if none)."""
        for phrase in self._by_first.get(words[i].key, ()):
            n = len(phrase)
            if i + n <= len(words) and all(words[i + k].key == phrase[k] for k in range(1, n)):
                return n
        return 0

    def length_ending_at(self, words: Sequence[Token], end: int) -> int:
        """Words in the longest phrase ending just before words[end] (0 if none)."""
        for phrase in self._by_last.get(words[end - 1].key, ()):
            n = len(phrase)
            if end - n >= 0 and all(words[end - n + k].key == phrase[k] for k in range(n - 1)):
                return n
        return 0

    def strip(self, words: list[Token], *, leading: bool = True, trailing: bool = True) -> list[Token]:
        """`words` without phrases at its start and/or end (never stripped down to nothing)."""
        start, end = 0, len(words)
        while leading and start < end - 1 and (n := self.length_at(words, start)) and start + n < end:
            start += n
        while trailing and end - 1 > start and (n := self.length_ending_at(words, end)) and end - n > start:
            end -= n
        return words[start:end]
