"""Splitting and classification rules beyond the public examples."""

from __future__ import annotations

import pytest

from altlas.segmentation import segment_command


def types(command: str) -> list[str]:
    return [s.task_type.value for s in segment_command(command).segments]


def contents(command: str) -> list[str]:
    return [s.content for s in segment_command(command).segments]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("Search for salt and pepper recipes", ["search"]),
        ("Open Firefox and Chrome", ["open"]),
        ("Raporu ve sunumu sil", ["delete"]),
        ("Open the download folder", ["open"]),  # a verb-looking noun after "the"
        ("Close the browser", ["close"]),  # "browse" is not in "browser"
        ("Belgeyi PDF olarak kaydet", ["save"]),  # "ara" is not in "olarak"
        ("iki saat sonra toplantıyı hatırlat", ["schedule"]),  # "sonra" after a duration is no marker
        ("Please open Spotify, then play my workout playlist", ["open", "execute"]),
        ("Can you take a screenshot and email it to Ali?", ["screenshot", "send"]),
        ("Open Chrome. Search for the weather. Take a screenshot.", ["open", "search", "screenshot"]),
        ("Zip the logs folder; upload it to the server", ["compress", "send"]),
        ("Dosyaları sıkıştırarak Ali'ye gönder", ["compress", "send"]),
        ("Chrome'u açtıktan sonra hava durumunu ara", ["open", "search"]),
        ("Önce dosyaları yedekle, sonra klasörü sil", ["copy", "delete"]),
        ("Raporu kaydedip müdüre gönderin", ["save", "send"]),
        ("Lütfen dosyayı açar mısın", ["open"]),
        ("Bu metni İngilizceye çevir", ["translate"]),
        ("Bu resmi PNG formatına çevir", ["transform"]),
        ("Convert the video to MP4", ["transform"]),
        ("Convert this paragraph to Spanish", ["translate"]),
        ("Back up my photos to the external drive", ["copy"]),
        ("Remind me tomorrow at 9am about the meeting", ["schedule"]),
        ("Rename report.docx to final.docx", ["transform"]),
        ("Dosyanın adını yeniden adlandır", ["transform"]),
        ("Ekranın görüntüsünü al", ["screenshot"]),
        ("Ali'ye mail at", ["send"]),
        ("do the thing with the widget", ["execute"]),
        ("Open Spotify and turn up the volume", ["open", "execute"]),  # an action outside the 20 types
        ("Müzik çal ve sesi yükselt", ["execute", "execute"]),
        ("Belgeyi rapor_son.docx olarak kaydedin", ["save"]),  # "olarak" is no converb of an action
        ("Send a message to Burak saying 'I'll be late, start without me'.", ["send"]),  # quotes stay whole
        ("Zip the wedding photos. Also, back them up to the cloud.", ["compress", "copy"]),  # particle verb
        ("Shut it down and then open Chrome", ["close", "open"]),
    ],
)
def test_types(command: str, expected: list[str]) -> None:
    assert types(command) == expected


def test_unknown_action_is_execute_with_low_confidence() -> None:
    plan = segment_command("do the thing with the widget")
    assert plan.segments[0].task_type.value == "execute"
    assert plan.segments[0].metadata["confidence"] <= 0.5


def test_markers_are_not_content() -> None:
    assert contents("Search for Python tutorials, then summarize the top three results") == [
        "Search for Python tutorials",
        "summarize the top three results",
    ]
    assert contents("Python derslerini ara, ardından en iyi üç sonucu özetle") == [
        "Python derslerini ara",
        "en iyi üç sonucu özetle",
    ]


def test_rejoined_clause_keeps_its_marker_text() -> None:
    assert contents("Search for salt and pepper recipes") == ["Search for salt and pepper recipes"]
    assert contents("iki saat sonra toplantıyı hatırlat") == ["iki saat sonra toplantıyı hatırlat"]


@pytest.mark.parametrize(
    "command",
    [
        "Translate the README into Turkish and at the same time open the editor",
        "Download the file and simultaneously play some music",
        "Raporu indir ve aynı anda müzik çal",
        "Müziği aç, eş zamanlı olarak raporu yazdır",
        "Open Slack and play music at the same time",
    ],
)
def test_parallel_marker_removes_dependency(command: str) -> None:
    plan = segment_command(command)
    assert len(plan.segments) == 2
    assert plan.segments[1].dependencies == plan.segments[0].dependencies == []
    assert "same time" not in plan.segments[1].content


def test_parallel_segment_shares_prerequisites() -> None:
    plan = segment_command("Open Chrome, then download the report and at the same time play music")
    first, second, third = plan.segments
    assert second.dependencies == [first.id]
    assert third.dependencies == [first.id]


def test_every_value_is_a_substring_of_the_command() -> None:
    commands = [
        "Copy report.docx to the shared drive and send a link to Ayse",
        "Eski günlükleri arşiv klasörüne taşı, sonra geçici dizini sil",
        "README'yi Türkçe'ye çevir ve Ali'ye gönder",
        "Schedule a call with the team next Monday at 10am",
        "Yarın saat 9'da toplantıyı hatırlat",
    ]
    for command in commands:
        for segment in segment_command(command).segments:
            assert segment.content in command
            for parameter in segment.parameters:
                assert isinstance(parameter.value, str) and parameter.value in command, (command, parameter)
