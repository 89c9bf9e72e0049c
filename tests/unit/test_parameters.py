from __future__ import annotations

import pytest

from altlas.segmentation import segment_command


def params(command: str, index: int = 0) -> dict[str, str]:
    segment = segment_command(command).segments[index]
    return {p.name: p.value for p in segment.parameters}


@pytest.mark.parametrize(
    ("command", "index", "expected"),
    [
        ("Open Firefox and search for cheap hotels in Izmir", 1, {"query": "cheap hotels in Izmir"}),
        ("Open Firefox", 0, {"target": "Firefox"}),
        ("Firefox'u aç", 0, {"target": "Firefox"}),
        (
            "Copy report.docx to the shared drive",
            0,
            {"source": "report.docx", "destination": "the shared drive"},
        ),
        (
            "Eski günlükleri arşiv klasörüne taşı",
            0,
            {"source": "Eski günlükleri", "destination": "arşiv klasörüne"},
        ),
        ("Send a link to Ayse", 0, {"recipient": "Ayse", "object": "a link"}),
        ("Raporu Ayşe'ye gönder", 0, {"recipient": "Ayşe", "object": "Raporu"}),
        ("Translate the README into Turkish", 0, {"target_language": "Turkish", "object": "the README"}),
        ("README'yi Türkçe'ye çevir", 0, {"target_language": "Türkçe", "object": "README'yi"}),
        ("Convert the slides to PDF", 0, {"target_format": "PDF", "object": "the slides"}),
        ("Create a document called Budget", 0, {"title": "Budget"}),
        ("Save it as CSV", 0, {"format": "CSV", "object": "it"}),
        ("Schedule a meeting tomorrow at 3pm", 0, {"when": "tomorrow at 3pm", "object": "a meeting"}),
        ("Yarın saat 9'da toplantıyı hatırlat", 0, {"when": "Yarın saat 9'da", "object": "toplantıyı"}),
        ("Python derslerini ara", 0, {"query": "Python derslerini"}),
        ("Summarize the top three results", 0, {"object": "the top three results"}),
    ],
)
def test_parameters(command: str, index: int, expected: dict[str, str]) -> None:
    found = params(command, index)
    for name, value in expected.items():
        assert found.get(name) == value, (name, found)


def test_required_flags_follow_the_task_type() -> None:
    segment = segment_command("Search for cheap flights").segments[0]
    query = segment.parameter("query")
    assert query is not None and query.required and query.type.value == "string" and query.description
