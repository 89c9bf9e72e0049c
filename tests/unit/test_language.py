from __future__ import annotations

import pytest

from altlas.plans.model import Language
from altlas.segmentation import detect_language, segment_command


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("This is an English sentence", "en"),
        ("Dosyaları listele", "tr"),
        ("Open Firefox", "en"),
        ("Chrome'u ac ve hava durumunu ara", "tr"),  # Turkish typed without Turkish letters
        ("Play Tarkan's songs on Spotify", "en"),
        ("Translate the README into Turkish", "en"),
        ("README'yi Türkçe'ye çevir", "tr"),
        ("Show me the Şişli office address", "en"),  # a Turkish name in English
        ("Raporu Ali'ye gönder", "tr"),
        ("Sil", "tr"),
        ("Delete", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text).language.value == language


def test_override_language() -> None:
    plan = segment_command(
        "Open Firefox", __import__("altlas").segmentation.SegmentationOptions(language=Language.TR)
    )
    assert plan.language is Language.TR


def test_confidence_range() -> None:
    guess = detect_language("Firefox'u aç ve İzmir'de ucuz otelleri ara")
    assert 0.5 <= guess.confidence <= 1.0
    assert guess.scores["tr"] > guess.scores["en"]
