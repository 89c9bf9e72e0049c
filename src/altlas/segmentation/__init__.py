"""Segmentation: natural-language commands (English, Turkish) into ALT task plans."""

from altlas.segmentation.language import LanguageGuess, detect_language
from altlas.segmentation.segmenter import (
    MAX_COMMAND_CHARS,
    SegmentationOptions,
    check_command,
    segment_command,
)

__all__ = [
    "MAX_COMMAND_CHARS",
    "LanguageGuess",
    "SegmentationOptions",
    "check_command",
    "detect_language",
    "segment_command",
]
