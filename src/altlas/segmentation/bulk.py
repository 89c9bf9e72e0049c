"""Bulk segmentation: many commands, in input order, on all cores.

Input lines are commands, or JSON objects {"command": ..., other request fields}.
Each line gives exactly one output line: the compact plan, or an error record
{"line": n, "error": {...}} so that no line is lost and the output lines up with
the input. Blank lines are skipped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from altlas.errors import AltlasError
from altlas.plans.codec import plan_to_dict
from altlas.plans.model import Language, Mode, Persona
from altlas.segmentation.classifier import CONFIDENCE_UNKNOWN
from altlas.segmentation.prototypes import TypePrototypes, apply_decisions, decide, refine_plan_lines
from altlas.segmentation.segmenter import SegmentationOptions, segment_command
from altlas.segmentation.when import TimeReference, add_when_iso

__all__ = ["BulkResult", "segment_lines"]

# Below this many lines, starting worker processes costs more than it saves.
_PARALLEL_THRESHOLD = 256
_CHUNK = 128
_EMBED_GROUP = 16  # chunks whose undecided segments are embedded in one call

BulkResult = tuple[str, bool]  # (output line without newline, ok)
# What a worker sends back per line: the line, ok, and its undecided (segment index, content) pairs.
_WorkerResult = tuple[str, bool, list[tuple[int, str]]]

_OPTION_FIELDS = {"language", "mode", "persona", "chaos_level", "seed", "urgency", "metadata"}
_TIME_FIELDS = {"now", "timezone"}
_Defaults = tuple[SegmentationOptions, TimeReference]


def _line_options(raw: str, defaults: _Defaults) -> tuple[str, SegmentationOptions, TimeReference]:
    """The command, options and clock of one input line (plain text or a JSON object)."""
    options, reference = defaults
    if not raw.lstrip().startswith("{"):
        return raw, options, reference
    try:
        data = json.loads(raw)
    except ValueError:
        return raw, options, reference  # a command that happens to start with "{"
    if not isinstance(data, dict) or "command" not in data:
        raise AltlasError("a JSON line must be an object with a 'command' field", field="command")
    if _TIME_FIELDS & set(data):  # the line's own clock; what it leaves out comes from the run's
        reference = TimeReference.of(
            data.get("now", reference.now), data.get("timezone"), default_zone=reference.zone
        )
    unknown = sorted(set(data) - _OPTION_FIELDS - _TIME_FIELDS - {"command"})
    if unknown:
        raise AltlasError("is not a field of a bulk line", field=unknown[0])
    changes: dict[str, Any] = {k: v for k, v in data.items() if k in _OPTION_FIELDS}
    try:
        if "language" in changes:
            changes["language"] = Language(changes["language"])
        if "mode" in changes:
            changes["mode"] = Mode(changes["mode"])
        if "persona" in changes:
            changes["persona"] = Persona(changes["persona"])
    except ValueError as exc:
        raise AltlasError(str(exc), field="options") from None
    return data["command"], replace(options, **changes), reference


def _segment_one(line_no: int, raw: str, defaults: _Defaults) -> _WorkerResult:
    try:
        command, options, reference = _line_options(raw, defaults)
        plan = add_when_iso(segment_command(command, options), reference)
    except AltlasError as exc:
        record = {"line": line_no, "error": {"message": str(exc), "param": exc.field}}
        return json.dumps(record, ensure_ascii=False), False, []
    undecided = [
        (i, s.content) for i, s in enumerate(plan.segments) if s.metadata["confidence"] <= CONFIDENCE_UNKNOWN
    ]
    return json.dumps(plan_to_dict(plan), ensure_ascii=False, separators=(",", ":")), True, undecided


def _segment_chunk(chunk: tuple[_Defaults, list[tuple[int, str]]]) -> list[_WorkerResult]:
    defaults, jobs = chunk  # the options travel once per chunk, not once per line
    return [_segment_one(line_no, text, defaults) for line_no, text in jobs]


def _jobs(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for line_no, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        if text.strip():
            yield line_no, text


def _chunks(jobs: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for job in jobs:
        chunk.append(job)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def segment_lines(
    lines: Iterable[str],
    options: SegmentationOptions | None = None,
    *,
    workers: int | None = None,
    expected: int | None = None,
    prototypes: Callable[[], TypePrototypes] | None = None,
    reference: TimeReference | None = None,
) -> Iterator[BulkResult]:
    """Segment each non-blank line; yields (output line, ok) in input order.

    `workers`: processes to use (default: all cores); 1 runs in this process.
    `expected`: how many lines are coming, if known, to skip the pool for small inputs.
    `prototypes`: builds the embedding stage. Rules run in the worker processes while
    this process embeds the undecided segments of earlier chunks (on the GPU if the
    embedder has one); it is called after the workers start, so that no worker is
    forked from a process holding a CUDA context.
    `reference`: the clock schedule times are resolved against (default: the server's, read
    once for the run); a JSON line may give its own `now` and `timezone`.
    """
    defaults = (options or SegmentationOptions(), reference or TimeReference.of())
    workers = workers or os.cpu_count() or 1
    jobs = _jobs(lines)
    if workers == 1 or (expected is not None and expected < _PARALLEL_THRESHOLD):
        stage = prototypes() if prototypes is not None else None
        for chunk in _chunks(jobs, _CHUNK):
            yield from _finish(_segment_chunk((defaults, chunk)), stage)
        return
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    chunks = ((defaults, chunk) for chunk in _chunks(jobs, _CHUNK))
    with context.Pool(workers) as pool:
        results = pool.imap(_segment_chunk, chunks)
        if prototypes is None:
            for chunk_results in results:
                yield from _finish(chunk_results, None)
            return
        with context.Pool(max(1, workers // 4)) as patch_pool:
            stage = prototypes()  # after both pools exist: no process is forked holding a CUDA context
            yield from _embedding_pipeline(results, stage, patch_pool)


def _embedding_pipeline(
    results: Iterator[list[_WorkerResult]], stage: TypePrototypes, patch_pool: Any
) -> Iterator[BulkResult]:
    """Rules (worker pool) -> embeddings (here, one call per group of chunks) -> re-typing (patch pool)."""
    pending: deque[tuple[Any, list[bool]]] = deque()
    for chunk_group in _chunks(results, _EMBED_GROUP):
        flat = [r for chunk_results in chunk_group for r in chunk_results]
        decisions = decide(stage, [undecided for _, _, undecided in flat])
        lines = [text for text, _, _ in flat]
        pending.append(
            (patch_pool.apply_async(apply_decisions, (lines, decisions)), [ok for _, ok, _ in flat])
        )
        while len(pending) > 4:
            yield from _collected(*pending.popleft())
    while pending:
        yield from _collected(*pending.popleft())


def _collected(job: Any, oks: list[bool]) -> list[BulkResult]:
    return list(zip(job.get(), oks, strict=True))


def _finish(results: list[_WorkerResult], stage: TypePrototypes | None) -> list[BulkResult]:
    texts = [text for text, _, _ in results]
    if stage is not None:
        texts = refine_plan_lines(texts, [undecided for _, _, undecided in results], stage)
    return [(text, ok) for text, (_, ok, _) in zip(texts, results, strict=True)]
