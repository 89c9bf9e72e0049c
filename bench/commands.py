"""Generated commands in English and Turkish, 1 to 4 actions each, for benchmarks."""

from __future__ import annotations

import random

__all__ = ["generate_commands"]

_EN_ACTIONS = [
    "open {app}", "search for {thing} in {city}", "download {file}", "send {file} to {person}",
    "take a screenshot", "copy {file} to the shared drive", "summarize the top {n} results",
    "translate {file} into Turkish", "convert {file} to PDF", "delete the old logs",
    "schedule a meeting with {person} tomorrow at {n}pm", "sort the files by size", "close {app}",
    "zip the reports folder", "run the backup script", "list the files on the server",
    "check the disk usage", "create a spreadsheet of monthly expenses", "save it as CSV",
    # actions outside the lexicon's 20 types: undecided by rules, typed by the embedding stage
    "turn up the volume", "mute the microphone", "lock the screen", "pause the music",
]  # fmt: skip
_TR_ACTIONS = [
    "{app}'u aç", "{city}'de {thing_tr} ara", "{file} dosyasını indir", "{file} dosyasını {person}'ye gönder",
    "ekran görüntüsü al", "{file} dosyasını paylaşılan klasöre kopyala", "en iyi {n} sonucu özetle",
    "raporu İngilizceye çevir", "{file} dosyasını PDF'ye dönüştür", "eski günlükleri sil",
    "yarın saat {n}'da toplantıyı hatırlat", "dosyaları boyuta göre sırala", "{app}'u kapat",
    "raporlar klasörünü sıkıştır", "yedekleme betiğini çalıştır", "sunucudaki dosyaları listele",
    "disk kullanımını kontrol et", "aylık giderlerin tablosunu oluştur", "CSV olarak kaydet",
    "sesi kıs", "mikrofonu sustur", "ekranı kilitle", "müziği duraklat",
]  # fmt: skip
_EN_JOINERS = [" and ", ", then ", ". After that, ", " and at the same time ", ", "]
_TR_JOINERS = [" ve ", ", sonra ", ", ardından ", " ve aynı anda ", ", "]
_FILL = {
    "app": ["Firefox", "Chrome", "Spotify", "Slack", "Excel", "Notepad"],
    "thing": ["cheap hotels", "Python tutorials", "pizza places", "weather news"],
    "thing_tr": ["ucuz otelleri", "Python derslerini", "pizzacıları", "hava durumunu"],
    "city": ["Izmir", "Ankara", "Berlin", "Istanbul"],
    "file": ["report.docx", "notes.txt", "budget.xlsx", "slides.pptx"],
    "person": ["Ayse", "Ali", "Mehmet", "Zeynep"],
    "n": ["3", "5", "9", "10"],
}


def _vocabulary(i: int) -> tuple[list[str], list[str]]:
    """Actions and joiners: even commands English, odd ones Turkish."""
    return (_EN_ACTIONS, _EN_JOINERS) if i % 2 == 0 else (_TR_ACTIONS, _TR_JOINERS)


def _filled(rng: random.Random, text: str) -> str:
    """The template with its slots filled, first letter capitalised."""
    text = text.format(**{k: rng.choice(v) for k, v in _FILL.items()})
    return text[0].upper() + text[1:]


def generate_commands(count: int, seed: int = 0) -> list[str]:
    """`count` commands, half English and half Turkish, deterministic for a seed."""
    rng = random.Random(seed)
    commands = []
    for i in range(count):
        actions, joiners = _vocabulary(i)
        parts = [rng.choice(actions) for _ in range(rng.randint(1, 4))]
        text = parts[0]
        for part in parts[1:]:
            text += rng.choice(joiners) + part
        commands.append(_filled(rng, text))
    return commands


def generate_short_commands(count: int, seed: int = 0) -> list[str]:
    """`count` short commands (about 5-40 tokens), English and Turkish, almost all distinct."""
    rng = random.Random(seed)
    commands = []
    for i in range(count):
        actions, joiners = _vocabulary(i)
        text = rng.choice(actions)
        if rng.random() < 0.5:
            text += rng.choice(joiners) + rng.choice(actions)
        # A ticket number keeps texts distinct, as real command logs are.
        commands.append(f"{_filled(rng, text)} #{rng.randrange(10**6)}")
    return commands
