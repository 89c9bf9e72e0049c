"""Issue 19: no action lost. Verb-first Turkish clauses, subordinate and gerund clauses in
the order they run, polite frames, unknown verbs as their own low-confidence segments,
and every merge of a clause with a verb recorded with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from altlas.plans import plan_from_dict, plan_to_dict
from altlas.plans.model import AltFile
from altlas.segmentation import segment_command
from altlas.segmentation import turkish_verbs as tv
from altlas.segmentation.english_verbs import base_of_inflected, is_unknown_gerund

from .test_parameter_eval import segment_through_the_cli


def _types(plan: AltFile) -> list[str]:
    return [s.task_type.value for s in plan.segments]


def _chain(plan: AltFile) -> None:
    """Each segment waits for the one before it (the plan lists them in the order they run)."""
    assert plan.segments[0].dependencies == []
    for before, after in zip(plan.segments, plan.segments[1:], strict=False):
        assert after.dependencies == [before.id]


def _value(plan: AltFile, index: int, name: str) -> object:
    parameter = plan.segments[index].parameter(name)
    return parameter.value if parameter is not None else None


# --- the issue's examples ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "types", "verbs", "contents"),
    [
        (
            "Sil şu dosyayı, sonra çöp kutusunu göster", ["delete", "show"], ["Sil", "göster"],
            ["Sil şu dosyayı", "çöp kutusunu göster"],
        ),
        (
            "Aç şu Spotify'ı, sonra rock listesini oynat", ["open", "execute"], ["Aç", "oynat"],
            ["Aç şu Spotify'ı", "rock listesini oynat"],
        ),
        (
            "Kapat Chrome'u ve Firefox'u aç", ["close", "open"], ["Kapat", "aç"],
            ["Kapat Chrome'u", "Firefox'u aç"],
        ),
        (
            "Firefox'u aç ve kapat Chrome'u", ["open", "close"], ["aç", "kapat"],
            ["Firefox'u aç", "kapat Chrome'u"],
        ),
        (
            "After downloading the installer, run it", ["download", "execute"], ["downloading", "run"],
            ["downloading the installer", "run it"],
        ),
        (
            "After saving the file, close Word", ["save", "close"], ["saving", "close"],
            ["saving the file", "close Word"],
        ),
        (
            "Before closing Word, save the file", ["save", "close"], ["save", "closing"],
            ["save the file", "closing Word"],
        ),
    ],
)  # fmt: skip
def test_issue_examples_keep_every_action(
    command: str, types: list[str], verbs: list[str], contents: list[str]
) -> None:
    plan = segment_command(command)
    assert _types(plan) == types
    assert [s.metadata["verb"] for s in plan.segments] == verbs
    assert [s.content for s in plan.segments] == contents
    assert all(s.metadata["confidence"] >= 0.9 for s in plan.segments)
    _chain(plan)
    plan_from_dict(plan_to_dict(plan))


def test_issue_example_values() -> None:
    plan = segment_command("Aç şu Spotify'ı, sonra rock listesini oynat")
    assert _value(plan, 0, "target") == "Spotify"
    plan = segment_command("Kapat Chrome'u ve Firefox'u aç")
    assert (_value(plan, 0, "target"), _value(plan, 1, "target")) == ("Chrome", "Firefox")
    plan = segment_command("After saving the file, close Word")
    assert _value(plan, 1, "target") == "Word"


@pytest.mark.parametrize(
    ("command", "task_type", "verb"),
    [
        ("Would you mind translating this email into German?", "translate", "translating"),
        ("Do you mind opening Chrome?", "open", "opening"),
        ("Could you be so kind as to sort these files by date?", "sort", "sort"),
        ("How about playing some jazz?", "execute", "playing"),
        ("Bu e-postayı Almancaya çevirebilir misin?", "translate", "çevirebilir"),
        ("Rica etsem pencereyi kapatır mısın", "close", "kapatır"),
        ("Dosyayı silmeni istiyorum", "delete", "silmeni"),
        ("Dosyayı kaydetmeyi unutma", "save", "kaydetmeyi"),
    ],
)
def test_polite_frames_are_no_obstacle(command: str, task_type: str, verb: str) -> None:
    plan = segment_command(command)
    assert _types(plan) == [task_type]
    assert plan.segments[0].metadata["verb"] == verb
    assert plan.segments[0].metadata["confidence"] >= 0.9


def test_polite_frame_values() -> None:
    plan = segment_command("Would you mind translating this email into German?")
    assert _value(plan, 0, "target_language") == "German"
    plan = segment_command("Do you mind opening Chrome?")
    assert _value(plan, 0, "target") == "Chrome"


def test_a_gerund_frame_carries_over_and() -> None:
    plan = segment_command("Would you mind closing the window and opening the settings?")
    assert _types(plan) == ["close", "open"]
    _chain(plan)


# --- subordinate clauses: the plan lists actions in the order they run ----------------------------


@pytest.mark.parametrize(
    ("command", "types"),
    [
        ("Close Word after saving the file", ["save", "close"]),
        ("Save the document before closing Word", ["save", "close"]),
        ("Run the installer after you download it", ["download", "execute"]),
        ("Once you've downloaded the report, summarize it", ["download", "summarize"]),
        ("Before you send the report to Ali, translate it into English", ["translate", "send"]),
        ("Upon opening Excel, sort the sales sheet by date", ["open", "sort"]),
        ("After downloading and unzipping the archive, open the folder", ["download", "compress", "open"]),
        ("Before shutting down, close all open apps and save my work", ["close", "save", "close"]),
        ("Turn the lights off after closing the blinds", ["close", "execute"]),
        ("Before you send the invoice, double-check the totals", ["analyze", "send"]),
        ("Dosyayı indirdikten sonra çalıştır", ["download", "execute"]),
        ("Kapatmadan önce kaydet", ["save", "close"]),
        ("Word'ü kapatmadan önce belgeyi kaydet", ["save", "close"]),
        ("Belgeyi kaydet, Word'ü kapatmadan önce", ["save", "close"]),
        ("Programı çalıştır, indirdikten sonra", ["download", "execute"]),
        ("Uygulamayı kapatınca günlük dosyasını göster", ["close", "show"]),
    ],
)
def test_subordinate_clauses_run_in_their_order(command: str, types: list[str]) -> None:
    plan = segment_command(command)
    assert _types(plan) == types
    _chain(plan)
    plan_from_dict(plan_to_dict(plan))


def test_before_clause_is_marked_and_runs_last() -> None:
    plan = segment_command("Kapatmadan önce kaydet")
    assert [s.content for s in plan.segments] == ["kaydet", "Kapatmadan"]
    assert plan.segments[1].metadata["marker"] == "before"
    assert plan.metadata["execution_order"] == ["seg-1", "seg-2"]


@pytest.mark.parametrize(
    "command", ["While downloading the update, open Slack", "Dosyayı indirirken Slack'i aç"]
)
def test_while_runs_both_at_once(command: str) -> None:
    plan = segment_command(command)
    assert _types(plan) == ["download", "open"]
    assert plan.segments[1].dependencies == [] and plan.segments[1].metadata["parallel"]


@pytest.mark.parametrize(
    ("command", "task_type", "negated_verb", "negated_type"),
    [
        ("Close all tabs without saving", "close", "saving", "save"),
        ("Instead of deleting the old photos, move them to the archive", "move", "deleting", "delete"),
        ("Kaydetmeden Word'ü kapat", "close", "Kaydetmeden", "save"),
        ("Dosyaları silmek yerine arşivle", "compress", "silmek", "delete"),
    ],
)
def test_a_negated_action_is_merged_with_its_reason(
    command: str, task_type: str, negated_verb: str, negated_type: str
) -> None:
    plan = segment_command(command)
    assert _types(plan) == [task_type]
    (merged,) = plan.segments[0].metadata["merged"]
    assert merged["reason"] == "negated"
    assert (merged["verb"], merged["task_type"]) == (negated_verb, negated_type)
    start, end = merged["span"]
    assert command[start:end] == merged["content"] and merged["content"] in plan.segments[0].content
    plan_from_dict(plan_to_dict(plan))


def test_a_verbal_noun_last_is_the_object_of_a_verb_first() -> None:
    plan = segment_command("Yükle bu güncellemeyi, sonra sürüm notlarını göster")
    assert _types(plan) == ["execute", "show"]  # yükle: install a program, upload a file
    assert plan.segments[0].metadata["verb"] == "Yükle"
    assert _types(segment_command("Fotoğrafları Drive'a yükle")) == ["send"]


def test_a_negated_converb_leaves_the_object_to_the_main_verb() -> None:
    plan = segment_command("Kaydetmeden Word'ü kapat")
    assert _value(plan, 0, "target") == "Word"
    assert plan.segments[0].content == "Kaydetmeden Word'ü kapat"


@pytest.mark.parametrize(
    "command",
    [
        "Send the minutes to the team after the meeting",
        "Schedule a call with Ali before Friday",
        "Search for things to do in Rome before Christmas",
        "Once the download finishes, open the folder",
        "Toplantıdan sonra notları ekibe gönder",
        "Cumadan önce Ali ile görüşme planla",
    ],
)
def test_a_subordinator_without_an_action_splits_nothing(command: str) -> None:
    plan = segment_command(command)
    assert len(plan.segments) == 1 and "merged" not in plan.segments[0].metadata


@pytest.mark.parametrize(
    "command",
    ["Save the file; when you're done, send it to me", "Download the report. After, email it to Ali"],
)
def test_a_subordinator_with_nothing_after_it_means_then(command: str) -> None:
    plan = segment_command(command)
    assert [s.metadata["marker"] for s in plan.segments] == [None, "sequence"]
    assert plan.segments[0].content.startswith(("Save", "Download"))


@pytest.mark.parametrize(
    ("command", "content"),
    [
        ("Before 5 pm, back up the database", "Before 5 pm, back up the database"),
        ("After the meeting, send the notes", "After the meeting, send the notes"),
        ("Send the notes after the meeting", "Send the notes after the meeting"),
    ],
)
def test_a_verbless_subordinate_clause_stays_in_its_segment(command: str, content: str) -> None:
    (segment,) = segment_command(command).segments
    assert segment.content == content


# --- unknown verbs: their own segment, confidence <= 0.5 ---------------------------------------------


@pytest.mark.parametrize(
    ("command", "types", "unknown"),
    [
        ("Open Spotify and water the plants", ["open", "execute"], 1),
        ("Feed the cat, then open my email", ["execute", "open"], 0),
        ("Ping the team on Slack and search for the meeting notes", ["execute", "search"], 0),
        ("Chrome'u aç ve bitkileri sula", ["open", "execute"], 1),
        ("Kediyi besleyip mutfağı temizle", ["execute", "delete"], 0),
        ("Biraz bekledikten sonra Chrome'u aç", ["execute", "open"], 0),
        ("Hemen durdur müziği ve Spotify'ı kapat", ["execute", "close"], 0),
        ("Netflix'i aç ve ışıkları karart", ["open", "execute"], 1),
    ],
)
def test_an_unknown_action_is_its_own_segment(command: str, types: list[str], unknown: int) -> None:
    plan = segment_command(command)
    assert _types(plan) == types
    assert plan.segments[unknown].metadata["confidence"] <= 0.5
    others = [s for i, s in enumerate(plan.segments) if i != unknown]
    assert all(s.metadata["confidence"] >= 0.9 for s in others)


@pytest.mark.parametrize(
    "command",
    [
        "Find hotels and the best restaurants in Izmir",
        "Send Ali the report and Ayse the slides",
        "Email Dr. Brown the lab results from Monday.",
        "Yaz fotoğraflarını ve kış fotoğraflarını yedekle",
        "Ara sonuçları ve raporu kaydet",
    ],
)
def test_nouns_are_not_taken_for_unknown_verbs(command: str) -> None:
    assert len(segment_command(command).segments) == 1


# --- the verb forms behind it ---------------------------------------------------------------------


def test_english_inflections_map_to_their_base() -> None:
    forms = {
        "saving": "save", "saved": "save", "running": "run", "copies": "copy", "copied": "copy",
        "backing": "back", "sent": "send", "opening": "open", "zipped": "zip", "closes": "close",
    }  # fmt: skip
    assert {form: base_of_inflected(form) for form in forms} == forms
    assert base_of_inflected("morning") is None
    assert is_unknown_gerund("watering") and not is_unknown_gerund("morning")


def test_turkish_converbs_carry_their_link() -> None:
    links = {"indirdikten": tv.Link.AFTER, "acinca": tv.Link.AFTER, "indirirken": tv.Link.WHILE,
             "kaydetmeden": tv.Link.WITHOUT, "acip": None}  # fmt: skip
    for form, link in links.items():
        verb = tv.lookup(form)
        assert verb is not None and verb.shape is tv.VerbShape.CONVERB and verb.link is link, form
    silmek = tv.lookup("silmek")
    assert silmek is not None and silmek.nominal
    assert tv.lookup("alman") is None  # German, not "al" + -man


def test_guessed_turkish_verbs_need_an_ending_only_verbs_take() -> None:
    assert tv.guess("sulayip") is not None and tv.guess("bekledikten") is not None
    for word in ("cumadan", "erken", "sahip", "masa", "dosya"):
        assert tv.guess(word) is None, word


# --- the issue's acceptance path: the bulk CLI -------------------------------------------------------


def test_the_clauses_set_through_the_cli(tmp_path: Path) -> None:
    """segmentation_eval_clauses.jsonl through `altlas segment --input FILE --format jsonl`, as the
    issue's hidden sets run: types in the order they run, each segment waiting for the one before
    unless parallel, and the language, for at least 95 % of the commands."""
    data = Path(__file__).parent.parent / "data" / "segmentation_eval_clauses.jsonl"
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    plans = segment_through_the_cli(rows, tmp_path)
    misses = []
    for row, plan in zip(rows, plans, strict=True):
        segments = plan["segments"]
        parallel = [i > 0 and s["dependencies"] != [segments[i - 1]["id"]] for i, s in enumerate(segments)]
        types = [s["task_type"] for s in segments]
        if (plan["language"], types, parallel) != (row["language"], row["types"], row["parallel"]):
            misses.append(row["command"])
    assert 1 - len(misses) / len(rows) >= 0.95, misses
