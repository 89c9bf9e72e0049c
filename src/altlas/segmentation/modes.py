"""Modes (Dream, Explore, Chaos) and personas: deterministic, seeded changes to a plan.

Every change is drawn from `random.Random` seeded with the request's seed and a
purpose string, so one seed always gives one plan. None of them touches ids or
dependencies, and Chaos only picks other valid topological orders, so a plan stays
valid whatever the seed. Normal mode changes nothing.
"""

from __future__ import annotations

import random
from datetime import datetime

from altlas.plans.model import AltFile, Language, Mode, Parameter, ParameterType, Persona, Segment, TaskType

__all__ = ["apply_mode", "apply_persona", "chaos_probability", "seeded_rng"]


def seeded_rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"altlas:{seed}:{purpose}")


def chaos_probability(plan: AltFile) -> float:
    return (plan.chaos_level or 0) / 10 if plan.mode is Mode.CHAOS else 0.0


def apply_mode(plan: AltFile, seed: int) -> None:
    """Apply the plan's mode in place. Chaos's reordering happens in prioritize()."""
    if plan.mode is Mode.DREAM:
        _dream(plan, seeded_rng(seed, "dream"))
    elif plan.mode is Mode.EXPLORE:
        _explore(plan, seeded_rng(seed, "explore"))
    elif plan.mode is Mode.CHAOS:
        _chaos_parameters(plan, seeded_rng(seed, "chaos"))


# --- Dream: creative variations ---------------------------------------------------------

# Task types that could creatively stand in for each type (a suggestion, never a swap:
# the plan must still do what was asked).
_DREAM_VARIATIONS: dict[TaskType, tuple[TaskType, ...]] = {
    TaskType.SEARCH: (TaskType.ANALYZE, TaskType.SUMMARIZE),
    TaskType.CREATE: (TaskType.TRANSFORM, TaskType.SUMMARIZE),
    TaskType.SUMMARIZE: (TaskType.CREATE, TaskType.TRANSLATE),
    TaskType.TRANSFORM: (TaskType.CREATE, TaskType.COMPRESS),
    TaskType.ANALYZE: (TaskType.SUMMARIZE, TaskType.SHOW),
    TaskType.SHOW: (TaskType.SUMMARIZE, TaskType.SORT),
    TaskType.TRANSLATE: (TaskType.SUMMARIZE, TaskType.TRANSFORM),
    TaskType.SEND: (TaskType.SAVE, TaskType.SCHEDULE),
    TaskType.SCREENSHOT: (TaskType.SAVE, TaskType.ANALYZE),
}
_STYLES = {
    Language.EN: ("surreal", "minimalist", "vivid", "playful", "cinematic", "poetic", "retro", "dreamlike"),
    Language.TR: ("gerçeküstü", "minimalist", "canlı", "oyunbaz", "sinematik", "şiirsel", "retro", "düşsel"),
}


def _dream(plan: AltFile, rng: random.Random) -> None:
    for segment in plan.segments:
        style = rng.choice(_STYLES[plan.language])
        _add(segment, "style", style, ParameterType.STRING, "Creative style (Dream mode)")
        _add(segment, "creativity", round(rng.uniform(0.6, 1.0), 2), ParameterType.NUMBER, "0-1 (Dream mode)")
        variations = _DREAM_VARIATIONS.get(segment.task_type, ())
        if variations:
            segment.metadata["dream_variation"] = str(rng.choice(variations))


# --- Explore: alternatives for every parameter ---------------------------------------------

_RELATED = {
    "cheap": ("budget", "affordable", "low-cost"),
    "best": ("top-rated", "recommended", "popular"),
    "tutorials": ("guides", "courses", "examples"),
    "tutorial": ("guide", "course", "walkthrough"),
    "hotels": ("hostels", "apartments", "guesthouses"),
    "report": ("summary", "document", "brief"),
    "news": ("headlines", "articles", "updates"),
    "weather": ("forecast", "temperature", "climate"),
    "flights": ("airfare", "plane tickets", "trips"),
    "photos": ("images", "pictures", "snapshots"),
    "music": ("songs", "playlists", "albums"),
    "ucuz": ("uygun fiyatlı", "ekonomik", "indirimli"),
    "otelleri": ("pansiyonları", "apartları", "tatil köylerini"),
    "hava": ("hava tahmini", "sıcaklık", "iklim"),
    "dersleri": ("eğitimleri", "kursları", "örnekleri"),
    "derslerini": ("eğitimlerini", "kurslarını", "örneklerini"),
    "haberleri": ("manşetleri", "gelişmeleri", "makaleleri"),
    "rapor": ("özet", "belge", "döküman"),
    "fotoğrafları": ("resimleri", "görselleri", "kareleri"),
}
_GENERIC = {
    Language.EN: ("{v} alternatives", "best {v}", "{v} examples", "latest {v}", "{v} reviews"),
    Language.TR: ("{v} alternatifleri", "en iyi {v}", "{v} örnekleri", "güncel {v}", "{v} yorumları"),
}


def _explore(plan: AltFile, rng: random.Random) -> None:
    for segment in plan.segments:
        for parameter in list(segment.parameters):
            if parameter.type is not ParameterType.STRING or not isinstance(parameter.value, str):
                continue
            alternatives = _alternatives(parameter.value, plan.language, rng)
            _add(
                segment, f"{parameter.name}_alternatives", alternatives, ParameterType.ARRAY,
                f"Related terms for {parameter.name} (Explore mode)",
            )  # fmt: skip


def _alternatives(value: str, language: Language, rng: random.Random) -> list[str]:
    words = value.split()
    found: list[str] = []
    for i, word in enumerate(words):
        for related in _RELATED.get(word.lower(), ()):
            found.append(" ".join([*words[:i], related, *words[i + 1 :]]))
    templates = list(_GENERIC[language])
    rng.shuffle(templates)
    found.extend(t.format(v=value) for t in templates)
    unique = list(dict.fromkeys(a for a in found if a != value))
    return unique[:3]


# --- Chaos: shuffled parameter words (the reordering is in prioritize) ----------------


def _chaos_parameters(plan: AltFile, rng: random.Random) -> None:
    probability = chaos_probability(plan)
    for segment in plan.segments:
        if rng.random() >= probability:
            continue
        for parameter in segment.parameters:
            if isinstance(parameter.value, str) and " " in parameter.value.strip():
                words = parameter.value.split()
                rng.shuffle(words)
                parameter.value = " ".join(words)
        segment.metadata["chaos_applied"] = True


# --- Personas ------------------------------------------------------------------------------

_SOURCES = {
    Language.EN: ["official documentation", "academic papers", "reputable news sites", "expert forums"],
    Language.TR: ["resmi belgeler", "akademik makaleler", "güvenilir haber siteleri", "uzman forumları"],
}
_TONES = ("vivid", "lyrical", "playful", "dramatic", "warm", "witty")
_WRITER_TASKS = frozenset(
    {TaskType.CREATE, TaskType.TRANSFORM, TaskType.SUMMARIZE, TaskType.TRANSLATE, TaskType.SEND}
)


def apply_persona(plan: AltFile, seed: int, deadline: datetime | None) -> None:
    """Add the persona's parameters in place; technical_expert is the baseline and adds none."""
    rng = seeded_rng(seed, "persona")
    for segment in plan.segments:
        if plan.persona is Persona.RESEARCHER and segment.task_type in (TaskType.SEARCH, TaskType.ANALYZE):
            sources = rng.sample(_SOURCES[plan.language], 3)
            _add(segment, "sources", sources, ParameterType.ARRAY, "Kinds of sources to prefer (researcher)")
        elif plan.persona is Persona.CREATIVE_WRITER and segment.task_type in _WRITER_TASKS:
            _add(segment, "tone", rng.choice(_TONES), ParameterType.STRING, "Writing tone (creative_writer)")
        elif plan.persona is Persona.PROJECT_MANAGER:
            value = deadline.isoformat() if deadline else None
            _add(segment, "deadline", value, ParameterType.STRING, "Deadline to track (project_manager)")
            _add(
                segment, "milestone", f"{plan.segments.index(segment) + 1}/{len(plan.segments)}",
                ParameterType.STRING, "Step in the plan (project_manager)",
            )  # fmt: skip


def _add(segment: Segment, name: str, value: object, ptype: ParameterType, description: str) -> None:
    if segment.parameter(name) is None:
        segment.parameters.append(Parameter(name, value, ptype, False, description))
