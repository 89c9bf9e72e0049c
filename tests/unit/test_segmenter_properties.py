"""Properties of segment_command on random commands: valid plans, exact substrings, no crash,
and no clause holding a verb lost (issue 19)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from altlas.errors import AltlasError
from altlas.plans import plan_from_dict, plan_to_dict
from altlas.plans.model import Mode
from altlas.segmentation import SegmentationOptions, segment_command

vocabulary = st.sampled_from(
    "Open open aç AÇ Sil Kapat kapatmadan önce indirdikten After before after saving without closing "
    "while would you mind opening water the plants bitkileri sula "
    "search ara find bul and ve then sonra ardından , . ; ! ? at the same time aynı anda "
    "meanwhile paralel olarak Firefox'u Chrome report.docx ~/Downloads C:\\Users\\x to into Ali'ye Ayşe "
    "çevir Türkçeye İngilizce PDF CSV olarak kaydet save as delete sil remove take a screenshot ekran "
    "görüntüsü al please lütfen yarın saat 9'da tomorrow at 9am 'quoted, text' \"x, y\" çalıştırıp indirip "
    "analiz edip kontrol et the a my browser download folder search results 🙂 ı İ".split(" ")
)
commands = st.lists(vocabulary, min_size=1, max_size=30).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(command=commands, mode=st.sampled_from(list(Mode)), seed=st.integers(0, 2**32))
def test_random_commands_give_valid_plans(command: str, mode: Mode, seed: int) -> None:
    options = SegmentationOptions(mode=mode, chaos_level=5 if mode is Mode.CHAOS else None, seed=seed)
    try:
        plan = segment_command(command, options)
    except AltlasError:
        assert not any(ch.isalnum() for ch in command)
        return
    plan_from_dict(plan_to_dict(plan))
    assert plan.segments
    for segment in plan.segments:
        assert segment.content and segment.content in command
        assert 0 <= segment.metadata["confidence"] <= 1
        if mode in (Mode.NORMAL, Mode.EXPLORE):
            for parameter in segment.parameters:
                if parameter.type.value == "string" and parameter.value is not None:
                    assert parameter.value in command


@settings(max_examples=300, deadline=None)
@given(command=st.text(min_size=1, max_size=300))
def test_arbitrary_text_never_crashes(command: str) -> None:
    try:
        plan = segment_command(command)
    except AltlasError:
        return
    plan_from_dict(plan_to_dict(plan))


# --- No clause with a verb is lost --------------------------------------------------------------


@dataclass(frozen=True)
class Verb:
    """One action in the forms a command may give it."""

    task_type: str
    plain: str  # "open Chrome" / "Chrome'u aç"
    first: str | None = None  # Turkish verb first: "Aç Chrome'u"
    after: str | None = None  # English gerund "opening Chrome" / Turkish "Chrome'u açtıktan sonra"
    before: str | None = None  # Turkish "Chrome'u açmadan önce"


EN_VERBS = [
    Verb("open", "open Chrome", after="opening Chrome"),
    Verb("save", "save the report", after="saving the report"),
    Verb("delete", "delete the old logs", after="deleting the old logs"),
    Verb("download", "download the installer", after="downloading the installer"),
    Verb("send", "send the file to Ali", after="sending the file to Ali"),
    Verb("close", "close Word", after="closing Word"),
    Verb("search", "search for cheap flights", after="searching for cheap flights"),
    Verb("compress", "compress the photos", after="compressing the photos"),
    Verb("translate", "translate the email into German", after="translating the email into German"),
    Verb("screenshot", "take a screenshot", after="taking a screenshot"),
    Verb("summarize", "summarize the article", after="summarizing the article"),
    Verb("copy", "back up my documents", after="backing up my documents"),
    # actions none of the 20 types names ("?": confidence at most 0.5), one unknown to the lexicon
    Verb("execute?", "water the plants", after="watering the plants"),
    Verb("execute?", "mute the microphone", after="muting the microphone"),
]
TR_VERBS = [
    Verb("open", "Chrome'u aç", "Aç Chrome'u", "Chrome'u açtıktan sonra", "Chrome'u açmadan önce"),
    Verb("save", "raporu kaydet", "Kaydet raporu", "raporu kaydettikten sonra", "raporu kaydetmeden önce"),
    Verb("delete", "eski dosyaları sil", "Sil eski dosyaları", "eski dosyaları sildikten sonra",
         "eski dosyaları silmeden önce"),
    Verb("download", "kurulum dosyasını indir", "İndir kurulum dosyasını",
         "kurulum dosyasını indirdikten sonra", "kurulum dosyasını indirmeden önce"),
    Verb("close", "Word'ü kapat", "Kapat Word'ü", "Word'ü kapattıktan sonra", "Word'ü kapatmadan önce"),
    Verb("send", "dosyayı Ali'ye gönder", "Gönder dosyayı Ali'ye", "dosyayı Ali'ye gönderdikten sonra",
         "dosyayı Ali'ye göndermeden önce"),
    Verb("compress", "fotoğrafları sıkıştır", "Sıkıştır fotoğrafları", "fotoğrafları sıkıştırdıktan sonra",
         "fotoğrafları sıkıştırmadan önce"),
    Verb("summarize", "makaleyi özetle", "Özetle makaleyi", "makaleyi özetledikten sonra",
         "makaleyi özetlemeden önce"),
    Verb("execute", "betiği çalıştır", "Çalıştır betiği", "betiği çalıştırdıktan sonra",
         "betiği çalıştırmadan önce"),
    Verb("screenshot", "ekran görüntüsü al", None, "ekran görüntüsü aldıktan sonra",
         "ekran görüntüsü almadan önce"),
    Verb("execute?", "bitkileri sula", None, "bitkileri suladıktan sonra"),  # unknown to the lexicon
    Verb("execute?", "müziği durdur", "Durdur müziği", "müziği durdurduktan sonra",
         "müziği durdurmadan önce"),
]  # fmt: skip
EN_JOINERS = [" and ", ", then ", ". After that, ", ", ", " and then ", ". "]
TR_JOINERS = [" ve ", ", sonra ", ", ardından ", ", ", ". Sonra ", " ve daha sonra "]


@st.composite
def en_commands(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """(command, types of its segments in order, types of negated actions) in English."""
    first, second = draw(st.lists(st.sampled_from(EN_VERBS), min_size=2, max_size=2))
    shape = draw(st.sampled_from(["joined", "after", "after-trailing", "before", "before-trailing",
                                  "polite", "without"]))  # fmt: skip
    negated: list[str] = []
    if shape == "joined":
        verbs = draw(st.lists(st.sampled_from(EN_VERBS), min_size=1, max_size=4))
        text = verbs[0].plain
        for verb in verbs[1:]:
            text += draw(st.sampled_from(EN_JOINERS)) + verb.plain
        types = [v.task_type for v in verbs]
    elif shape == "after":  # "After saving the report, close Word"
        text, types = f"after {first.after}, {second.plain}", [first.task_type, second.task_type]
    elif shape == "after-trailing":  # "Close Word after saving the report"
        text, types = f"{second.plain} after {first.after}", [first.task_type, second.task_type]
    elif shape == "before":  # "Before closing Word, save the report"
        text, types = f"before {second.after}, {first.plain}", [first.task_type, second.task_type]
    elif shape == "before-trailing":
        text, types = f"{first.plain} before {second.after}", [first.task_type, second.task_type]
    elif shape == "polite":
        frame = draw(st.sampled_from(["would you mind {g}?", "do you mind {g}?", "could you please {p}?",
                                      "i'd like you to {p}", "would you be so kind as to {p}?"]))  # fmt: skip
        text, types = frame.format(g=first.after, p=first.plain), [first.task_type]
    else:  # "Close Word without saving the report"
        text, types, negated = f"{first.plain} without {second.after}", [first.task_type], [second.task_type]
    return text[0].upper() + text[1:], types, negated


@st.composite
def tr_commands(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """(command, types of its segments in order, types of negated actions) in Turkish."""
    shape = draw(st.sampled_from(["joined", "after", "before", "polite"]))
    if shape == "joined":  # verb last or, as in speech, first
        verbs = draw(st.lists(st.sampled_from(TR_VERBS), min_size=1, max_size=4))
        parts = [draw(st.sampled_from([v.plain, v.first or v.plain])) for v in verbs]
        text = parts[0]
        for part in parts[1:]:
            text += draw(st.sampled_from(TR_JOINERS)) + part
        return text[0].upper() + text[1:], [v.task_type for v in verbs], []
    first = draw(st.sampled_from([v for v in TR_VERBS if v.after and v.before]))
    second = draw(st.sampled_from(TR_VERBS))
    if shape == "after":  # "raporu kaydettikten sonra Word'ü kapat"
        text, types = f"{first.after} {second.plain}", [first.task_type, second.task_type]
    elif shape == "before":  # "Word'ü kapatmadan önce raporu kaydet"
        text, types = f"{first.before} {second.plain}", [second.task_type, first.task_type]
    else:
        polite = draw(st.sampled_from(["lütfen {}", "{} lütfen", "rica etsem {}", "hemen {}"]))
        text, types = polite.format(first.plain), [first.task_type]
    return text[0].upper() + text[1:], types, []


@settings(max_examples=800, deadline=None)
@given(case=st.one_of(en_commands(), tr_commands()))
def test_no_clause_with_a_verb_is_lost(case: tuple[str, list[str], list[str]]) -> None:
    """Every clause that holds a verb becomes a segment, in the order the actions run, or is
    recorded in a segment's metadata with the reason it is none."""
    command, types, negated = case
    plan = segment_command(command)
    assert [s.task_type.value for s in plan.segments] == [t.rstrip("?") for t in types], command
    for segment, expected in zip(plan.segments, types, strict=True):
        low = segment.metadata["confidence"] <= 0.5
        assert low == expected.endswith("?"), (command, segment.content)
    merged = [m for s in plan.segments for m in s.metadata.get("merged", [])]
    assert sorted(m["task_type"] for m in merged) == sorted(t.rstrip("?") for t in negated), command
    assert all(m["reason"] == "negated" and m["content"] in command for m in merged)
    for before, after in zip(plan.segments, plan.segments[1:], strict=False):
        assert after.dependencies == [before.id], command
