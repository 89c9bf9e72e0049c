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
            {"source": "report.docx", "destination": "shared drive"},
        ),
        (
            "Eski günlükleri arşiv klasörüne taşı",
            0,
            {"source": "Eski günlükleri", "destination": "arşiv klasörüne"},
        ),
        ("Send a link to Ayse", 0, {"recipient": "Ayse", "object": "link"}),
        ("Raporu Ayşe'ye gönder", 0, {"recipient": "Ayşe", "object": "Raporu"}),
        ("Translate the README into Turkish", 0, {"target_language": "Turkish", "object": "README"}),
        ("README'yi Türkçe'ye çevir", 0, {"target_language": "Türkçe", "object": "README"}),
        ("Convert the slides to PDF", 0, {"target_format": "PDF", "object": "slides"}),
        ("Create a document called Budget", 0, {"title": "Budget"}),
        ("Save it as CSV", 0, {"format": "CSV", "object": "it"}),
        ("Schedule a meeting tomorrow at 3pm", 0, {"when": "tomorrow at 3pm", "object": "meeting"}),
        ("Yarın saat 9'da toplantıyı hatırlat", 0, {"when": "Yarın saat 9'da", "object": "toplantıyı"}),
        ("Python derslerini ara", 0, {"query": "Python derslerini"}),
        ("Summarize the top three results", 0, {"object": "top three results"}),
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


# Issue 19: every example the issue names, as a plan and its values.
@pytest.mark.parametrize(
    ("command", "task_type", "expected"),
    [
        ("Mehmet Bey'e raporu gönder", "send", {"recipient": "Mehmet Bey", "object": "raporu"}),
        ("Raporu Mehmet Bey'e gönder", "send", {"recipient": "Mehmet Bey", "object": "Raporu"}),
        ("Ayşe Hanım'a mesaj at", "send", {"recipient": "Ayşe Hanım", "object": None}),
        ("Dosyaları Google Drive'a yükle", "send", {"recipient": "Google Drive", "object": "Dosyaları"}),
        ("Raporu ekibe gönder", "send", {"recipient": "ekibe", "object": "Raporu"}),
        ("Bu mesajı genel kanala paylaş", "send", {"recipient": "genel kanala", "object": "mesajı"}),
        ("Email Dr. Smith the lab results", "send", {"recipient": "Dr. Smith", "object": "lab results"}),
        ("Muhasebe klasörüne kopyala", "copy", {"destination": "Muhasebe klasörüne", "source": None}),
        (
            "Sunum klasörünü USB belleğe kopyala",
            "copy",
            {"source": "Sunum klasörünü", "destination": "USB belleğe"},
        ),
        ("bu makaleyi özetler misin", "summarize", {"object": "makaleyi"}),
        ("Bluetooth'u kapatır mısın", "close", {"target": "Bluetooth"}),
        ("Ekran görüntüsü alır mısın", "screenshot", {"object": None}),
        ("Bi bakar mısın", "execute", {"object": None}),
        ("masaüstüne kaydet", "save", {"destination": "masaüstüne", "object": None}),
    ],
)
def test_issue_19_examples(command: str, task_type: str, expected: dict[str, str | None]) -> None:
    plan = segment_command(command)
    assert [s.task_type.value for s in plan.segments] == [task_type]
    found = params(command)
    for name, value in expected.items():
        assert found.get(name) == value, (name, found)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # titles before and after names, proper names, compounds before a case ending
        ("Sözleşmeyi Dr. Ahmet Yılmaz'a gönder", {"recipient": "Dr. Ahmet Yılmaz", "object": "Sözleşmeyi"}),
        ("Bu linki Av. Murat Kaya'ya gönder", {"recipient": "Av. Murat Kaya", "object": "linki"}),
        ("Kerem Usta'ya adresi mesaj olarak gönder", {"recipient": "Kerem Usta", "object": "adresi"}),
        ("Yönetim kuruluna sunumu gönder", {"recipient": "Yönetim kuruluna", "object": "sunumu"}),
        ("Doğum günü fotoğraflarını aile grubuna gönder", {"recipient": "aile grubuna"}),
        ("Doğum günü fotoğraflarını aile grubuna gönder", {"object": "Doğum günü fotoğraflarını"}),
        ("Bütçe tablosunu Kemal Bey'e yolla", {"recipient": "Kemal Bey", "object": "Bütçe tablosunu"}),
        # "X ile", "X'le" and a locative share: where it goes
        ("Dosyayı Ali Bey ile paylaş", {"recipient": "Ali Bey", "object": "Dosyayı"}),
        ("Sunumu Zeynep'le paylaş", {"recipient": "Zeynep", "object": "Sunumu"}),
        ("Sonucu ekip kanalında paylaş", {"recipient": "ekip kanalında", "object": "Sonucu"}),
        ("Slack'te genel kanala duyuruyu paylaş", {"recipient": "genel kanala", "object": "duyuruyu"}),
        (
            "Bu e-postayı Ayşe Hanım ile paylaşabilir misin?",
            {"recipient": "Ayşe Hanım", "object": "e-postayı"},
        ),
        ("Bi zahmet şu maili Ali'ye at", {"recipient": "Ali", "object": "maili"}),
        (
            "Sevgili Mehmet Bey'e teşekkür mesajı gönder",
            {"recipient": "Mehmet Bey", "object": "teşekkür mesajı"},
        ),
        # move, copy, save: a dative alone is the destination; accusative + dative both
        ("Şu dosyayı yeni klasöre taşı", {"source": "dosyayı", "destination": "yeni klasöre"}),
        ("Belgeleri harici diske kopyala", {"source": "Belgeleri", "destination": "harici diske"}),
        ("Ortak klasöre taşı", {"destination": "Ortak klasöre", "source": None}),
        ("Faturayı Finans klasöründe sakla", {"object": "Faturayı", "destination": "Finans klasöründe"}),
        ("Sunumu PDF olarak masaüstüne kaydet", {"object": "Sunumu", "format": "PDF"}),
        ("Sunumu PDF olarak masaüstüne kaydet", {"destination": "masaüstüne"}),
        ("Raporu rapor_son.txt olarak kaydet", {"object": "Raporu", "destination": "rapor_son.txt"}),
        ("Notu 'Alışveriş Listesi' adıyla kaydet", {"destination": "Alışveriş Listesi"}),
        # question particles, the verb asked about, politeness, determiners
        ("Raporu Ali'ye gönderir misin lütfen", {"recipient": "Ali", "object": "Raporu"}),
        ("Lütfen bu videoyu indirir misin", {"object": "videoyu"}),
        ("Şu belgeyi İngilizceye çevirir misin", {"target_language": "İngilizce", "object": "belgeyi"}),
        ("Hava durumunu arar mısın", {"query": "Hava durumunu"}),
        ("Wi-Fi'yi kapatır mısınız", {"target": "Wi-Fi"}),
        # apostrophe: a case ending is cut, a plural is not
        ("tüm PDF'leri Belgeler klasörüne taşı", {"source": "tüm PDF'leri"}),
        ("Yarınki toplantının gündemini Ahmet Bey'e gönder", {"object": "Yarınki toplantının gündemini"}),
        ("Yarınki toplantının gündemini Ahmet Bey'e gönder", {"when": None}),
        # English: the first object of a send-like verb may be the recipient
        ("Send Ali the quarterly report", {"recipient": "Ali", "object": "quarterly report"}),
        ("Email my manager the timesheet", {"recipient": "my manager", "object": "timesheet"}),
        ("Message Lisa that I will be late", {"recipient": "Lisa", "object": "I will be late"}),
        ("Email Prof. Miller", {"recipient": "Prof. Miller", "object": None}),
        ("Email the report", {"object": "report", "recipient": None}),
        ("Forward this email to Mr. John Carter", {"recipient": "Mr. John Carter", "object": "email"}),
        (
            "Please send over the contract to Dr. Jane Smith",
            {"recipient": "Dr. Jane Smith", "object": "contract"},
        ),
        ("Can you please email the team the agenda?", {"recipient": "team", "object": "agenda"}),
        ("Could you please close Bluetooth?", {"target": "Bluetooth"}),
        ("Open the Downloads folder, please", {"target": "Downloads folder"}),
        ("Play The Beatles", {"object": "The Beatles"}),
        ("Save this page to my desktop", {"object": "page", "destination": "my desktop"}),
        ("Compress the 'Project X' folder", {"object": "'Project X' folder"}),
        ("Remind me tomorrow at 9 am to call the dentist", {"object": "call the dentist"}),
        ("Schedule the budget review for March 20 at 3 pm", {"object": "budget review"}),
    ],
)
def test_values_name_the_thing(command: str, expected: dict[str, str | None]) -> None:
    found = params(command)
    for name, value in expected.items():
        assert found.get(name) == value, (name, found)


def test_turkish_values_keep_a_fused_case_ending_and_lose_one_after_an_apostrophe() -> None:
    assert params("Raporu ekibe gönder")["recipient"] == "ekibe"
    assert params("Raporu Ayşe'ye gönder")["recipient"] == "Ayşe"
    assert params("README'yi Türkçe'ye çevir")["object"] == "README"
    assert params("Raporu arşiv klasörüne taşı")["destination"] == "arşiv klasörüne"
