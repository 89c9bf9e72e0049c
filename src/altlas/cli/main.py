"""`altlas` command line: segment, embed, doctor, serve, schema, validate, jobs.

Every user error exits with code 2 and one line on stderr ("altlas: error: ..."),
never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from tqdm import tqdm

    from altlas.engine.service import ModelService
    from altlas.segmentation.prototypes import TypePrototypes
    from altlas.segmentation.when import TimeReference

import altlas
from altlas.cli.jobs import add_jobs_parser, run_jobs
from altlas.errors import AltlasError
from altlas.plans.model import Language, Mode, Persona
from altlas.settings import Settings

__all__ = ["main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"altlas: error: {message} (see 'altlas {self._sub_name()}--help')\n")

    def _sub_name(self) -> str:
        parts = self.prog.split()[1:]
        return " ".join(parts) + " " if parts else ""


def _fail(message: str) -> NoReturn:
    print(f"altlas: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="altlas", description="ALT_LAS core: commands into ALT task plans, and model serving."
    )
    parser.add_argument("--version", action="version", version=f"altlas {altlas.__version__}")
    sub = parser.add_subparsers(dest="command_name", required=True, parser_class=_Parser)

    seg = sub.add_parser("segment", help="turn a command (or a file of commands) into ALT plans")
    seg.add_argument("text", nargs="?", help="the command, in English or Turkish")
    seg.add_argument("--input", "-i", type=Path, help="a file with one command per line ('-' for stdin)")
    seg.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    seg.add_argument(
        "--format", "-f", choices=["yaml", "json", "jsonl"], help="default: yaml, or jsonl with --input"
    )
    seg.add_argument("--lang", choices=[lang.value for lang in Language], help="skip language detection")
    seg.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.NORMAL.value)
    seg.add_argument("--persona", choices=[p.value for p in Persona], default=Persona.TECHNICAL_EXPERT.value)
    seg.add_argument("--chaos-level", type=int, help="1-10; required with --mode Chaos")
    seg.add_argument("--seed", type=int, help="same seed, same plan")
    seg.add_argument("--urgency", type=int, default=5, help="1-10 (default 5)")
    seg.add_argument("--deadline", help="ISO 8601 date-time; a near deadline raises urgency")
    seg.add_argument(
        "--now", help="ISO 8601 date-time that schedule times (when_iso) are resolved against (default: now)"
    )
    seg.add_argument(
        "--timezone", help="IANA time zone, e.g. Europe/Istanbul (default: --now's offset, else local)"
    )
    seg.add_argument("--workers", type=int, help="processes for --input (default: all cores)")
    seg.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    seg.add_argument(
        "--embeddings",
        action="store_true",
        help="with --input: type segments the lexicon cannot decide by their nearest task-type prototype",
    )
    _add_device_flags(seg)

    embed = sub.add_parser("embed", help="embed texts (one per line) with the sentence-embedding model")
    embed.add_argument("--input", "-i", type=Path, required=True, help="one text per line ('-' for stdin)")
    embed.add_argument(
        "--output", "-o", type=Path, help="a .npy file (float32 [N, dim]); default: JSON lines"
    )
    embed.add_argument("--model", help="a sentence-transformers model folder (default: all-MiniLM-L6-v2)")
    embed.add_argument("--batch-tokens", type=int, help="padded tokens per device batch")
    embed.add_argument("--no-normalize", action="store_true", help="skip L2 normalisation")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    _add_device_flags(embed)

    doctor = sub.add_parser(
        "doctor", help="report the GPU, driver, CUDA and torch, and whether the GPU path suits"
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    serve = sub.add_parser("serve", help="start the HTTP service")
    serve.add_argument("--host", help="default 127.0.0.1 (ALTLAS_HOST)")
    serve.add_argument("--port", type=int, help="default 8080 (ALTLAS_PORT)")
    serve.add_argument("--data-dir", type=Path, help="where plans are kept (ALTLAS_DATA_DIR, default ./data)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (ALTLAS_LOG_LEVEL)")
    serve.add_argument(
        "--engines", type=int,
        help="engine processes owning the models: 1, or 0 to serve them here (ALTLAS_ENGINES, default 1)",
    )  # fmt: skip
    _add_device_flags(serve)

    sub.add_parser("schema", help="print the JSON Schema of ALT plans")

    validate = sub.add_parser("validate", help="check an ALT plan file (JSON or YAML), optionally convert it")
    validate.add_argument("file", type=Path)
    validate.add_argument("--to", choices=["json", "yaml"], help="print the plan converted to this format")

    prof = sub.add_parser(
        "profile", help="profile a workload (torch profiler + cProfile): a trace, hotspots and a verdict"
    )
    prof.add_argument("workload", choices=["segment", "embed", "search", "generate"])
    prof.add_argument("--input", "-i", type=Path, required=True, help="one text per line ('-' for stdin)")
    prof.add_argument("--limit", type=int, help="profile only the first N lines")
    prof.add_argument(
        "--out", type=Path, default=Path("profile"), help="folder for the files (default ./profile)"
    )
    prof.add_argument("--model", help="the model (embed, search: a sentence-transformers folder; generate: "
                      "a transformers folder or .gguf file); default: the shipped one")  # fmt: skip
    _add_device_flags(prof)

    add_jobs_parser(sub)
    return parser


def _add_device_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device")
    group.add_argument("--device", help="auto, cpu, cuda or cuda:N (ALTLAS_DEVICE; default auto)")
    group.add_argument("--precision", help="auto, fp32, fp16 or bf16 (ALTLAS_PRECISION; default auto)")
    group.add_argument(
        "--gpu-memory-gb", type=float, help="cap this process's GPU memory, e.g. 8 (ALTLAS_GPU_MEMORY_GB)"
    )


def _device_settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(device=args.device, precision=args.precision, gpu_memory_gb=args.gpu_memory_gb)


def _configured(args: argparse.Namespace) -> Settings:
    """The settings of a command that runs models in this process, with the process set up for them."""
    from altlas.runtime.process import configure_process

    settings = _device_settings(args)
    configure_process(settings)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command_name == "segment":
            return _segment(args)
        if args.command_name == "serve":
            return _serve(args)
        if args.command_name == "doctor":
            return _doctor(args)
        if args.command_name == "embed":
            return _embed(args)
        if args.command_name == "jobs":
            return run_jobs(args)
        if args.command_name == "profile":
            return _profile(args)
        if args.command_name == "schema":
            from altlas.plans.schema import plan_json_schema

            print(json.dumps(plan_json_schema(), indent=2))
            return 0
        return _validate(args)
    except AltlasError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 130


def _options(args: argparse.Namespace) -> object:
    from altlas.segmentation.segmenter import SegmentationOptions

    deadline = None
    if args.deadline:
        try:
            deadline = datetime.fromisoformat(args.deadline.replace("Z", "+00:00"))
        except ValueError:
            _fail(f"--deadline: not an ISO 8601 date-time: {args.deadline!r}")
    return SegmentationOptions(
        language=Language(args.lang) if args.lang else None,
        mode=Mode(args.mode),
        persona=Persona(args.persona),
        chaos_level=args.chaos_level,
        seed=args.seed,
        urgency=args.urgency,
        deadline=deadline,
    )


_FLAGS = {
    "chaos_level": "--chaos-level", "urgency": "--urgency", "seed": "--seed", "now": "--now",
    "timezone": "--timezone",
}  # fmt: skip


def _segment(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.input is None):
        _fail("give either a COMMAND or --input FILE")
    from altlas.segmentation.when import TimeReference, add_when_iso

    try:
        options = _options(args)
        reference = TimeReference.of(args.now, args.timezone)
    except AltlasError as exc:
        flag = _FLAGS.get(exc.field or "", exc.field)
        _fail(f"{flag}: {exc.message}" if flag else exc.message)
    if args.input is not None:
        return _segment_file(args, options, reference)
    from altlas.plans.codec import dumps
    from altlas.segmentation.segmenter import segment_command

    plan = add_when_iso(segment_command(args.text, options), reference)  # type: ignore[arg-type]
    fmt = args.format or "yaml"
    text = dumps(plan, "yaml") if fmt == "yaml" else dumps(plan, "json", indent=None if fmt == "jsonl" else 2)
    _write_text(args.output, text if text.endswith("\n") else text + "\n")
    return 0


def _write_text(path: Path | None, text: str) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"--output: cannot write {path}: {exc.strerror}")


def _segment_file(args: argparse.Namespace, options: object, reference: TimeReference) -> int:
    from altlas.segmentation.bulk import segment_lines

    if args.format not in (None, "jsonl"):
        _fail("--input writes one plan per line: use --format jsonl")
    if args.workers is not None and args.workers < 1:
        _fail("--workers must be at least 1")
    lines = _read_lines(args.input)
    out = _open_output(args.output)
    failed = 0
    stage = _prototype_stage(args) if args.embeddings else None
    with out, _progress(len(lines), disabled=args.no_progress) as bar:
        results = segment_lines(
            lines,
            options,  # type: ignore[arg-type]
            workers=args.workers,
            expected=len(lines),
            prototypes=stage,
            reference=reference,
        )
        for text, ok in results:
            out.write(text + "\n")
            failed += not ok
            bar.update(1)
    if failed:
        print(
            f"altlas: {failed} of {len(lines)} lines could not be segmented (error records written)",
            file=sys.stderr,
        )
        return 1
    return 0


def _prototype_stage(args: argparse.Namespace) -> Callable[[], TypePrototypes]:
    settings = _device_settings(args)

    def build() -> TypePrototypes:  # in this process, once the rule workers have started
        from altlas.embeddings.engine import Embedder
        from altlas.runtime.process import configure_process
        from altlas.segmentation.prototypes import TypePrototypes

        configure_process(settings)
        return TypePrototypes(Embedder.from_settings(settings).encode)

    return build


def _read_lines(path: Path) -> list[str]:
    source = _open_input(path)
    try:
        return source.read().splitlines()
    except UnicodeDecodeError as exc:
        _fail(f"--input: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    finally:
        if source is not sys.stdin:
            source.close()


def _open_input(path: Path) -> IO[str]:
    if str(path) == "-":
        return sys.stdin
    try:
        return path.open(encoding="utf-8", errors="strict")
    except OSError as exc:
        _fail(f"--input: cannot read {path}: {exc.strerror}")


def _open_output(path: Path | None) -> IO[str]:
    if path is None:
        return open(sys.stdout.fileno(), "w", encoding="utf-8", closefd=False)
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        _fail(f"--output: cannot write {path}: {exc.strerror}")


def _progress(total: int, *, disabled: bool) -> tqdm[Any]:
    from tqdm import tqdm

    return tqdm(total=total, unit="cmd", disable=disabled or not sys.stderr.isatty(), file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from altlas.api.app import create_app
    from altlas.api.http_protocol import head_timeout_protocol
    from altlas.logs import configure_logging
    from altlas.runtime.process import configure_process

    settings = Settings.from_env(
        host=args.host, port=args.port, data_dir=args.data_dir, log_level=args.log_level, engines=args.engines
    )
    configure_logging(settings.log_level)
    configure_process(settings)
    with _engines(settings) as models:
        app = create_app(settings, models)
        # uvicorn's httptools protocol with a time limit on request heads (slow clients)
        protocol = head_timeout_protocol(settings.header_timeout_s)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False,
            http=protocol or "auto",
        )  # fmt: skip
        server = uvicorn.Server(config)
        server.run()
    return 0 if server.started else 1


@contextlib.contextmanager
def _engines(settings: Settings) -> Iterator[ModelService | None]:
    """The engine processes serving the models (settings.engines; they get these settings as
    ALTLAS_* variables), started and watched for the block, and a client of them for the app;
    None with no engines (the app serves the models itself)."""
    if not settings.engines:
        yield None
        return
    from altlas.engine.client import EngineClient
    from altlas.engine.supervisor import EXIT_UNUSABLE, EngineStartError, EngineSupervisor

    with tempfile.TemporaryDirectory(prefix="altlas-run-") as run_dir:
        supervisor = EngineSupervisor(
            Path(run_dir), settings.engines, {**os.environ, **settings.environment()}
        )
        supervisor.start()
        try:
            try:
                supervisor.ready(settings.engine_start_timeout_s)  # the server listens once they serve
            except EngineStartError as exc:  # an engine that cannot start has said why on stderr
                if exc.code != EXIT_UNUSABLE:
                    print(f"altlas: error: {exc}", file=sys.stderr)
                raise SystemExit(exc.code) from None
            yield EngineClient(supervisor.addresses[0], start_timeout_s=settings.engine_start_timeout_s)
        finally:
            supervisor.stop()


def _validate(args: argparse.Namespace) -> int:
    from altlas.plans.codec import PlanFormat, dumps, loads

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}")
    fmt: PlanFormat = "yaml" if args.file.suffix.lower() in (".yaml", ".yml") else "json"
    plan = loads(text, fmt)
    if args.to:
        out = dumps(plan, args.to)
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
    else:
        print(f"{args.file}: valid ALT plan, {len(plan.segments)} segments")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _doctor(args: argparse.Namespace) -> int:
    from altlas.runtime.device import probe
    from altlas.runtime.doctor import format_report

    report = probe()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_report(report))
    return 0


def _profile(args: argparse.Namespace) -> int:
    from altlas.observability.profiling import profile_workload

    if args.limit is not None and args.limit < 1:
        _fail("--limit must be at least 1")
    texts = _read_lines(args.input)[: args.limit]
    report = profile_workload(args.workload, texts, _configured(args), args.out, model=args.model)
    print(report.markdown())
    files = ", ".join(str(path) for path in report.files.values())
    done = f"profiled {report.items:,} inputs in {report.wall_s:.2f} s on {report.device}"
    print(f"altlas: {done}; wrote {files}", file=sys.stderr)
    return 0


def _embed(args: argparse.Namespace) -> int:
    import numpy as np

    from altlas.embeddings.engine import Embedder

    settings = _configured(args)
    if args.output is not None and args.output.suffix != ".npy":
        _fail("--output: give a .npy file (or leave it out for JSON lines on stdout)")
    if args.batch_tokens is not None and args.batch_tokens < 1:
        _fail("--batch-tokens must be at least 1")
    texts = _read_lines(args.input)
    embedder = Embedder.from_settings(settings, args.model)
    with _progress(len(texts), disabled=args.no_progress) as bar:
        vectors = embedder.encode(
            texts, batch_tokens=args.batch_tokens, normalize=not args.no_normalize, progress=bar.update
        )
    if args.output is not None:
        try:
            np.save(args.output, vectors)
        except OSError as exc:
            _fail(f"--output: cannot write {args.output}: {exc.strerror}")
    else:
        out = _open_output(None)
        with out:
            for vector in vectors:
                out.write(json.dumps([round(float(x), 7) for x in vector]) + "\n")
    stats = embedder.last_stats
    rate = len(texts) / max(stats.wall_s, 1e-9)
    print(
        f"altlas: {len(texts):,} texts in {stats.wall_s:.2f} s ({rate:,.0f}/s) on {embedder.describe()}",
        file=sys.stderr,
    )
    return 0
