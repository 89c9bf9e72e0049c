"""The model registry: which models the orchestrator serves, read from and written to `models.yaml`.

A model has a name, a task, a backend, a device policy, a precision, whether it loads at
start, whether it is pinned (never unloaded to make GPU room for another), warm-up inputs,
and one or more versions (each a source: a path, or a file inside an installed Python
package that ships weights, written `package:<module>/<path inside>`), one of them active.
The file lives in the data dir; the first start copies the default one shipped with the
package. Every change is written atomically (a temporary file renamed
over the old one), so a crash leaves either the old registry or the new one; a change that
cannot be written leaves the registry as it was.

A spec is checked whole before anything changes: its fields, its nesting depth, and its
options, each a known name within its bounds (`OPTIONS`). A client's sources must also lie
under the model roots (`source_allowed`); the server's own file is its configuration.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from altlas.errors import InvalidInputError, NotFoundError
from altlas.storage.atomic import write_atomically

__all__ = [
    "BACKENDS",
    "OPTIONS",
    "TASKS",
    "ModelSpec",
    "OptionRule",
    "Registry",
    "default_registry_text",
    "resolve_source",
    "source_allowed",
]

# task -> the backends that serve it
BACKENDS: dict[str, tuple[str, ...]] = {
    "embedding": ("sentence-transformers",),
    "generation": ("transformers", "llama-cpp"),
    "audio-vad": ("silero",),
    "image-classification": ("efficientnet-lite", "torchscript", "onnx"),
}
TASKS = tuple(BACKENDS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_MAX_DEPTH = 8  # containers in a spec (the deepest legal one, options.mean, is 3 levels down)
_MAX_VERSIONS = 64  # per model
_MAX_WARMUP = 32  # warm-up inputs, each at most _MAX_WARMUP_CHARS
_MAX_WARMUP_CHARS = 4_096
_MAX_SOURCE_CHARS = 4_096


@dataclass(frozen=True)
class OptionRule:
    """What one option takes: `kind` int, number (int or float), bool, or triple (three
    numbers, one per colour channel); numbers from `low` to `high`."""

    kind: str
    low: int | float = 0
    high: int | float = 0

    def check(self, value: Any, where: str) -> None:
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InvalidInputError("must be true or false", field=where)
            return
        span = f"from {_number(self.low)} to {_number(self.high)}"
        if self.kind == "triple" and (not isinstance(value, list) or len(value) != 3):
            raise InvalidInputError(f"must be 3 numbers {span}", field=where)
        kinds = (int,) if self.kind == "int" else (int, float)
        for item in value if self.kind == "triple" else [value]:  # NaN fails `low <= item` too
            if isinstance(item, bool) or not isinstance(item, kinds) or not self.low <= item <= self.high:
                what = "an integer" if self.kind == "int" else "a number"
                raise InvalidInputError(f"must be {what} {span}", field=where)


def _number(value: int | float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


# Every option a model may set; every number is bounded. Read by the manager (batching,
# spill-over) and the backends (the rest); a name not here is refused.
OPTIONS: dict[str, OptionRule] = {
    "batching": OptionRule("bool"),  # off: every request runs alone
    "max_batch_tokens": OptionRule("int", 1, 4_194_304),  # gathered per batch
    "max_wait_ms": OptionRule("number", 0, 10_000),  # the oldest request's wait for others
    "max_queue": OptionRule("int", 1, 100_000),  # requests waiting; one more gets 429
    "cpu_replica": OptionRule("bool"),  # a CPU copy serves a GPU model's overflow
    "spill_queue_depth": OptionRule("int", 1, 100_000),
    "spill_wait_ms": OptionRule("number", 0, 60_000),
    "forward_batch_tokens": OptionRule("int", 1, 4_194_304),  # embedding: tokens per forward pass
    "max_context": OptionRule("int", 16, 131_072),  # generation: prompt + answer tokens
    "fast_decode": OptionRule("bool"),
    "max_sequences": OptionRule("int", 1, 1_024),  # generations decoded together
    "kv_cache_tokens": OptionRule("int", 1, 1_048_576),  # their shared KV cache
    "chunk_seconds": OptionRule("number", 1, 3_600),  # audio-vad: side-by-side pieces
    "cpu_threads": OptionRule("int", 1, 256),
    "size": OptionRule("int", 1, 1_024),  # image-classification: the square input's side
    "mean": OptionRule("triple", -10, 10),  # per channel, pixels scaled to 0-1
    "std": OptionRule("triple", 0.001, 10),
}


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether containers in `value` nest more than `limit` deep; without recursion, and a
    container seen before walked again only when met deeper (a YAML alias puts one object in
    many places: an alias bomb costs its distinct containers, not its expansion)."""
    seen: dict[int, int] = {}
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list | tuple) or seen.get(id(item), -1) >= depth:
            continue
        if depth >= limit:
            return True
        seen[id(item)] = depth
        stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _check_options(options: Any, where: str) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise InvalidInputError("must be a mapping", field=where)
    for name, value in options.items():
        rule = OPTIONS.get(name) if isinstance(name, str) else None
        if rule is None:
            raise InvalidInputError(
                f"unknown option; the options are {', '.join(sorted(OPTIONS))}", field=f"{where}.{name}"
            )
        rule.check(value, f"{where}.{name}")
    return dict(options)


@dataclass(frozen=True)
class ModelSpec:
    """One model as the registry declares it."""

    name: str
    task: str
    backend: str
    versions: dict[str, str]  # version -> source
    active: str  # the version that serves
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | fp16 | bf16
    load_at_start: bool = False
    warmup: list[str] = field(default_factory=list)  # inputs run once after loading
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific settings
    pinned: bool = False  # never unloaded to make GPU room for another model

    @property
    def source(self) -> str:
        return self.versions[self.active]

    @classmethod
    def from_dict(cls, data: Any, where: str = "model") -> ModelSpec:
        """A checked spec from the YAML/JSON shape; errors name the field."""
        if not isinstance(data, dict):
            raise InvalidInputError("must be a mapping", field=where)
        if _nests_deeper(data, _MAX_DEPTH):
            raise InvalidInputError(f"nests deeper than {_MAX_DEPTH} levels", field=where)
        known = {"name", "task", "backend", "versions", "active", "device", "precision",
                 "load_at_start", "warmup", "options", "pinned"}  # fmt: skip
        unknown = sorted(str(key) for key in set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown field {unknown[0]!r}", field=f"{where}.{unknown[0]}")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInputError(
                "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                field=f"{where}.name",
            )
        task = data.get("task")
        if not isinstance(task, str) or task not in BACKENDS:
            raise InvalidInputError(f"must be one of {', '.join(TASKS)}, got {task!r}", field=f"{where}.task")
        backend = data.get("backend", BACKENDS[task][0])
        if not isinstance(backend, str) or backend not in BACKENDS[task]:
            raise InvalidInputError(
                f"task {task} is served by {', '.join(BACKENDS[task])}, not {backend!r}",
                field=f"{where}.backend",
            )
        versions = data.get("versions")
        if isinstance(versions, str):
            versions = {"1": versions}
        if not isinstance(versions, dict) or not versions:
            raise InvalidInputError("must map version names to sources", field=f"{where}.versions")
        if len(versions) > _MAX_VERSIONS:
            raise InvalidInputError(f"at most {_MAX_VERSIONS} versions", field=f"{where}.versions")
        for version, source in versions.items():
            if not isinstance(version, str) or not _NAME.fullmatch(version):
                raise InvalidInputError("version names are like model names", field=f"{where}.versions")
            if (
                not isinstance(source, str)
                or not source.strip()
                or len(source) > _MAX_SOURCE_CHARS
                or not source.isprintable()
            ):
                raise InvalidInputError(
                    f"must be a path or package:<module>/<file> (at most {_MAX_SOURCE_CHARS:,} printable "
                    "characters)",
                    field=f"{where}.versions.{version}",
                )
        active = data.get("active", next(iter(versions)))
        if not isinstance(active, str) or active not in versions:
            raise InvalidInputError(f"{active!r} is not one of the versions", field=f"{where}.active")
        device = data.get("device", "auto")
        device = device.lower() if isinstance(device, str) else ""
        if not _DEVICE.fullmatch(device):
            raise InvalidInputError(
                f"must be auto, cpu, cuda or cuda:N, got {device!r}", field=f"{where}.device"
            )
        precision = data.get("precision", "auto")
        precision = precision.lower() if isinstance(precision, str) else ""
        if precision not in _PRECISIONS:
            raise InvalidInputError(
                f"must be one of {', '.join(_PRECISIONS)}, got {precision!r}", field=f"{where}.precision"
            )
        load_at_start = data.get("load_at_start", False)
        if not isinstance(load_at_start, bool):
            raise InvalidInputError("must be true or false", field=f"{where}.load_at_start")
        pinned = data.get("pinned", False)
        if not isinstance(pinned, bool):
            raise InvalidInputError("must be true or false", field=f"{where}.pinned")
        warmup = data.get("warmup", [])
        if (
            not isinstance(warmup, list)
            or len(warmup) > _MAX_WARMUP
            or not all(isinstance(item, str) and len(item) <= _MAX_WARMUP_CHARS for item in warmup)
        ):
            raise InvalidInputError(
                f"must be a list of at most {_MAX_WARMUP} strings, each at most {_MAX_WARMUP_CHARS:,} long",
                field=f"{where}.warmup",
            )
        options = _check_options(data.get("options", {}), f"{where}.options")
        return cls(name, task, backend, dict(versions), active, device, precision, load_at_start,
                   list(warmup), options, pinned)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _package_folder(module: str) -> Path:
    """An installed package's folder, found without importing it (some weight packages import
    heavy plug-in frameworks)."""
    try:
        spec = importlib.util.find_spec(module) if module.isidentifier() else None
    except (ImportError, ValueError):  # e.g. a module in sys.modules without a spec
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInputError(
            f"package {module!r} is not installed (pip install {module.replace('_', '-')})", field="source"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _source_path(source: str, data_dir: Path) -> tuple[Path, Path | None]:
    """(the path a source names, whether or not it exists; its package's folder, for a
    `package:` source)."""
    if source.startswith("package:"):
        module, _, inner = source.removeprefix("package:").partition("/")
        folder = _package_folder(module)
        return folder / inner, folder
    path = Path(source).expanduser()
    return (path if path.is_absolute() else data_dir / path), None


def resolve_source(source: str, data_dir: Path) -> Path:
    """The file or folder a source names: `package:<module>/<path>` inside an installed package,
    an absolute path, or a path relative to the data dir."""
    path, _ = _source_path(source, data_dir)
    if not path.exists():
        raise InvalidInputError(f"{source!r}: {path} does not exist", field="source")
    return path


def source_allowed(source: str, data_dir: Path, roots: Iterable[str]) -> bool:
    """Whether a client may name `source`: a path that lies, symlinks and '..' resolved, under
    `<data dir>/models` or one of `roots` (relative ones: to the data dir), or a file inside the
    folder of the installed package a `package:` source names. Whether the file exists plays
    no part. Raises InvalidInputError for a package that is not installed."""
    try:
        path, folder = _source_path(source, data_dir)
        if folder is not None:
            allowed = [folder]
        else:
            allowed = [data_dir / "models", *(data_dir / Path(root).expanduser() for root in roots)]
        resolved = path.resolve()
        return any(resolved.is_relative_to(root.resolve()) for root in allowed)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unknown ~user, a NUL byte
        return False


def default_registry_text() -> str:
    return resources.files("altlas.orchestrator").joinpath("models.yaml").read_text(encoding="utf-8")


class Registry:
    """The models of `<data dir>/models.yaml`, thread-safe; every change is saved at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, default_registry_text())
        self._models = self._read()

    def _read(self) -> dict[str, ModelSpec]:
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"{self.path} is not valid YAML: {exc}", field="models.yaml") from None
        except RecursionError:  # the parser recurses per level
            raise InvalidInputError(f"{self.path} nests too deeply", field="models.yaml") from None
        entries = data.get("models", []) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise InvalidInputError(f"{self.path}: expected a top-level 'models' list", field="models.yaml")
        models: dict[str, ModelSpec] = {}
        for i, entry in enumerate(entries):
            spec = ModelSpec.from_dict(entry, where=f"models[{i}]")
            if spec.name in models:
                raise InvalidInputError(f"model {spec.name!r} appears twice", field=f"models[{i}].name")
            models[spec.name] = spec
        return models

    def _commit(self, models: dict[str, ModelSpec]) -> None:
        """Write `models` to the file, then hold them (under the lock): a change that cannot be
        written (or written out) raises with the registry as it was."""
        header = (
            "# altlas model registry (written by altlas; edit with the server stopped, or over the API)\n"
        )
        body = yaml.safe_dump({"models": [m.to_dict() for m in models.values()]}, sort_keys=False)
        write_atomically(self.path, header + body)
        self._models = models

    def names(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def get(self, name: str) -> ModelSpec:
        with self._lock:
            spec = self._models.get(name)
        if spec is None:
            raise NotFoundError(f"no model named {name!r}", field="model")
        return spec

    def all(self) -> list[ModelSpec]:
        with self._lock:
            return list(self._models.values())

    def register(self, spec: ModelSpec, *, replace_existing: bool = False) -> ModelSpec:
        with self._lock:
            old = self._models.get(spec.name)
            if old is not None and not replace_existing:
                if old.task != spec.task or old.backend != spec.backend:
                    raise InvalidInputError(
                        f"model {spec.name!r} exists with task {old.task}/{old.backend}", field="name"
                    )
                # registering again adds versions; the active one stays unless this call names one
                spec = replace(old, versions={**old.versions, **spec.versions})
                if len(spec.versions) > _MAX_VERSIONS:
                    raise InvalidInputError(
                        f"model {spec.name!r} would have over {_MAX_VERSIONS} versions", field="versions"
                    )
            self._commit({**self._models, spec.name: spec})
        return spec

    def activate(self, name: str, version: str) -> ModelSpec:
        with self._lock:
            spec = self._models.get(name)
            if spec is None:
                raise NotFoundError(f"no model named {name!r}", field="model")
            if version not in spec.versions:
                raise NotFoundError(
                    f"model {name!r} has no version {version!r} (it has {', '.join(spec.versions)})",
                    field="version",
                )
            spec = replace(spec, active=version)
            self._commit({**self._models, name: spec})
        return spec
