"""The issue's public examples: expected task types and dependencies."""

from __future__ import annotations

import pytest

from altlas.segmentation import segment_command

# (command, types, index of segments that do NOT depend on their predecessor)
EXAMPLES = [
    ("Open Firefox and search for cheap hotels in Izmir", ["open", "search"], set()),
    ("Search for Python tutorials, then summarize the top three results", ["search", "summarize"], set()),
    ("Create a spreadsheet of monthly expenses and save it as CSV", ["create", "save"], set()),
    ("Copy report.docx to the shared drive and send a link to Ayse", ["copy", "send"], set()),
    ("Take a screenshot of the error dialog", ["screenshot"], set()),
    ("Translate the README into Turkish and at the same time open the editor", ["translate", "open"], {1}),
    ("Firefox'u aç ve İzmir'de ucuz otelleri ara", ["open", "search"], set()),
    ("Python derslerini ara, ardından en iyi üç sonucu özetle", ["search", "summarize"], set()),
    ("Aylık giderlerin tablosunu oluştur ve CSV olarak kaydet", ["create", "save"], set()),
    ("Eski günlükleri arşiv klasörüne taşı, sonra geçici dizini sil", ["move", "delete"], set()),
    ("Sunucudaki dosyaları listele ve boyuta göre sırala", ["show", "sort"], set()),
    ("Yedekleme betiğini çalıştırıp sonuçları analiz et", ["execute", "analyze"], set()),
]


@pytest.mark.parametrize(("command", "types", "independent"), EXAMPLES, ids=[e[0][:40] for e in EXAMPLES])
def test_public_example(command: str, types: list[str], independent: set[int]) -> None:
    plan = segment_command(command)
    assert [s.task_type.value for s in plan.segments] == types
    for i, segment in enumerate(plan.segments):
        if i == 0 or i in independent:
            assert segment.dependencies == []
        else:
            assert segment.dependencies == [plan.segments[i - 1].id]


def test_save_as_csv_has_csv_format() -> None:
    plan = segment_command("Create a spreadsheet of monthly expenses and save it as CSV")
    fmt = plan.segments[1].parameter("format")
    assert fmt is not None and fmt.value == "CSV"


def test_languages_of_examples() -> None:
    for command, _, _ in EXAMPLES:
        expected = "tr" if any(c in command for c in "çğıöşüİ") else "en"
        assert segment_command(command).language.value == expected, command


def test_mission_command() -> None:
    plan = segment_command("Chrome'u aç ve hava durumunu ara, sonra ekran görüntüsü al")
    assert [s.task_type.value for s in plan.segments] == ["open", "search", "screenshot"]
    assert [s.content for s in plan.segments] == ["Chrome'u aç", "hava durumunu ara", "ekran görüntüsü al"]
