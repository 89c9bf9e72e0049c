"""Task types by meaning: segments the lexicon cannot decide get the type of the nearest prototype.

Each task type has a prototype: the normalised mean embedding of example phrases in
English and Turkish. A segment whose verb the lexicon does not know (confidence at
most 0.5) is embedded, compared with every prototype by cosine similarity, and
takes the nearest type when the similarity clears a floor; its confidence becomes
that similarity. Rules stay the authority: a segment the lexicon decided is never
touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from altlas.plans.codec import parameter_to_dict, plan_from_dict, plan_to_dict
from altlas.plans.model import Language, TaskType
from altlas.plans.priorities import PriorityRequest, PriorityWeights, prioritize
from altlas.segmentation.parameters import extract_parameters
from altlas.segmentation.text import fold, tokenize

__all__ = [
    "MIN_SIMILARITY",
    "PROTOTYPE_PHRASES",
    "Decision",
    "TypePrototypes",
    "apply_decisions",
    "decide",
    "refine_plan_lines",
]

MIN_SIMILARITY = 0.35  # below this, no prototype is near enough: the segment stays execute

PROTOTYPE_PHRASES: dict[TaskType, tuple[str, ...]] = {
    TaskType.SEARCH: (
        "search the web for information",
        "look up the answer online",
        "find nearby restaurants",
        "internette bilgi ara",
        "en yakın eczaneyi bul",
    ),
    TaskType.OPEN: (
        "open the application",
        "launch the browser",
        "start the music player",
        "uygulamayı aç",
        "tarayıcıyı başlat",
    ),
    TaskType.CLOSE: (
        "close the window",
        "quit the program",
        "exit the app",
        "pencereyi kapat",
        "programdan çık",
    ),
    TaskType.CREATE: (
        "create a new document",
        "write a short note",
        "draft an email",
        "yeni bir belge oluştur",
        "kısa bir not yaz",
    ),
    TaskType.SAVE: (
        "save the file",
        "store the document on disk",
        "export the table",
        "dosyayı kaydet",
        "belgeyi sakla",
    ),
    TaskType.DELETE: (
        "delete the old files",
        "remove the folder",
        "erase the history",
        "eski dosyaları sil",
        "klasörü kaldır",
    ),
    TaskType.MOVE: (
        "move the file to another folder",
        "relocate the documents",
        "dosyayı başka klasöre taşı",
    ),
    TaskType.COPY: (
        "copy the file",
        "back up the photos",
        "duplicate the folder",
        "dosyayı kopyala",
        "fotoğrafları yedekle",
    ),
    TaskType.COMPRESS: (
        "compress the folder",
        "zip the files",
        "archive the logs",
        "klasörü sıkıştır",
        "günlükleri arşivle",
    ),
    TaskType.DOWNLOAD: (
        "download the file",
        "fetch the attachment from the internet",
        "dosyayı indir",
        "eki internetten indir",
    ),
    TaskType.SEND: (
        "send the report by email",
        "share the link",
        "upload the photo",
        "message my friend",
        "raporu e-postayla gönder",
        "bağlantıyı paylaş",
    ),
    TaskType.TRANSFORM: (
        "convert the file to pdf",
        "resize the image",
        "rename the file",
        "format the disk",
        "dosyayı pdf'ye dönüştür",
        "resmi yeniden boyutlandır",
    ),
    TaskType.TRANSLATE: (
        "translate the text into english",
        "translate this to turkish",
        "metni İngilizceye çevir",
        "tercüme et",
    ),
    TaskType.ANALYZE: (
        "analyze the data",
        "check the disk usage",
        "inspect the logs",
        "measure the speed",
        "verileri analiz et",
        "disk kullanımını kontrol et",
    ),
    TaskType.SUMMARIZE: (
        "summarize the article",
        "give me a short summary",
        "makaleyi özetle",
        "kısa bir özet çıkar",
    ),
    TaskType.SHOW: (
        "show the list of files",
        "display the results",
        "print the report",
        "dosyaları listele",
        "sonuçları göster",
    ),
    TaskType.SORT: (
        "sort the files by size",
        "order the list by date",
        "rank the results",
        "dosyaları boyuta göre sırala",
    ),
    TaskType.EXECUTE: (
        "run the script",
        "play the video",
        "install the program",
        "turn up the volume",
        "mute the microphone",
        "lock the screen",
        "betiği çalıştır",
        "videoyu oynat",
        "sesi kıs",
        "ekranı kilitle",
    ),
    TaskType.SCHEDULE: (
        "schedule a meeting tomorrow",
        "remind me at five",
        "plan the trip",
        "yarın toplantı planla",
        "bana saat beşte hatırlat",
    ),
    TaskType.SCREENSHOT: ("take a screenshot", "capture the screen", "ekran görüntüsü al", "ekranı yakala"),
}


class TypePrototypes:
    """Prototype vectors of the 20 task types, and nearest-type lookup; `encode` gives texts'
    unit vectors (an Embedder's encode, or the models' service's)."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray]) -> None:
        self.encode = encode
        self.types = list(PROTOTYPE_PHRASES)
        phrases = [p for t in self.types for p in PROTOTYPE_PHRASES[t]]
        vectors = encode(phrases)
        rows, start = [], 0
        for task_type in self.types:
            count = len(PROTOTYPE_PHRASES[task_type])
            mean = vectors[start : start + count].mean(axis=0)
            rows.append(mean / np.linalg.norm(mean))
            start += count
        self.matrix = np.stack(rows).astype(np.float32)  # [types, dim]

    def nearest(self, texts: Sequence[str]) -> list[tuple[TaskType, float]]:
        """(nearest type, cosine similarity) for each text."""
        if not texts:
            return []
        scores = self.encode(list(texts)) @ self.matrix.T  # [n, types]
        best = scores.argmax(axis=1)
        return [(self.types[int(i)], float(scores[row, i])) for row, i in enumerate(best)]


Decision = tuple[int, str, float]  # (segment index, new task type, similarity)


def decide(prototypes: TypePrototypes, undecided: list[list[tuple[int, str]]]) -> list[list[Decision]]:
    """For each plan's undecided (segment index, content) pairs, the types near enough to adopt.

    All contents go to the embedder in one call, so the device sees one large batch.
    """
    flat = [(line, index, content) for line, pairs in enumerate(undecided) for index, content in pairs]
    decisions: list[list[Decision]] = [[] for _ in undecided]
    nearest = prototypes.nearest([content for _, _, content in flat])
    for (line, index, _), (task_type, similarity) in zip(flat, nearest, strict=True):
        if similarity >= MIN_SIMILARITY:
            decisions[line].append((index, task_type.value, similarity))
    return decisions


def apply_decisions(lines: list[str], decisions: list[list[Decision]]) -> list[str]:
    """Compact JSON plans with the decided segments re-typed and the plan re-prioritised.

    Pure CPU work, independent per line: bulk runs it in worker processes.
    """
    out = list(lines)
    for line_no, line_decisions in enumerate(decisions):
        if not line_decisions:
            continue
        data = json.loads(lines[line_no])
        for index, task_type, similarity in line_decisions:
            _retype(data, index, TaskType(task_type), similarity)
        out[line_no] = _reprioritized(data)
    return out


def refine_plan_lines(
    lines: list[str], undecided: list[list[tuple[int, str]]], prototypes: TypePrototypes
) -> list[str]:
    """Re-type the undecided segments of compact JSON plans, in this process."""
    return apply_decisions(lines, decide(prototypes, undecided))


def _retype(plan: dict[str, Any], index: int, task_type: TaskType, similarity: float) -> None:
    segment = plan["segments"][index]
    segment["task_type"] = task_type.value
    segment["metadata"]["confidence"] = round(min(max(similarity, 0.0), 1.0), 4)
    segment["metadata"]["classified_by"] = "embedding"
    command = plan["command"]
    start, end = segment["metadata"]["span"]
    words = [t for t in tokenize(command) if t.is_word and start <= t.start and t.end <= end]
    language = Language(plan["language"])
    parameters = extract_parameters(command, fold(command), words, None, task_type, language)
    segment["parameters"] = [parameter_to_dict(p) for p in parameters]


def _reprioritized(data: dict[str, Any]) -> str:
    """Scores depend on confidence: recompute them with the request's recorded priority settings."""
    plan = plan_from_dict(data)
    recorded = plan.metadata.get("priority", {})
    deadline = recorded.get("deadline")
    request = PriorityRequest(
        urgency=recorded.get("urgency", 5),
        deadline=datetime.fromisoformat(deadline) if deadline else None,
        preferences=recorded.get("user_preferences") or {},
        weights=PriorityWeights(**(recorded.get("weights") or {})),
    )
    prioritize(plan, request)
    return json.dumps(plan_to_dict(plan), ensure_ascii=False, separators=(",", ":"))
