"""Properties of segment_command on random commands: valid plans, exact substrings, no crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from altlas.errors import AltlasError
from altlas.plans import plan_from_dict, plan_to_dict
from altlas.plans.model import Mode
from altlas.segmentation import SegmentationOptions, segment_command

vocabulary = st.sampled_from(
    "Open open aç AÇ search ara find bul and ve then sonra ardından , . ; ! ? at the same time aynı anda "
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
