"""The model registry: which models the orchestrator serves, read from and written to `models.yaml`.

A model has a name, a task, a backend, a device policy, a precision, whether it loads at
start, whether it is pinned (never unloaded to make GPU room for another), warm-up inputs,
and one or more versions (each a source: a path, or a file inside an installed Python
package that ships weights, written `package:<module>/<path inside>`), one of them active.
The file lives in the data dir; the first start copies the default one shipped with the
package. Every change is written atomically (a temporary file renamed
over the old one), so a crash leaves either the old registry or the new one.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from altlas.errors import InvalidInputError, NotFoundError
from altlas.storage.atomic import write_atomically

__all__ = ["BACKENDS", "TASKS", "ModelSpec", "Registry", "default_registry_text", "resolve_source"]

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
        known = {"name", "task", "backend", "versions", "active", "device", "precision",
                 "load_at_start", "warmup", "options", "pinned"}  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown field {unknown[0]!r}", field=f"{where}.{unknown[0]}")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(
                "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                field=f"{where}.name",
            )
        task = data.get("task")
        if task not in BACKENDS:
            raise InvalidInputError(f"must be one of {', '.join(TASKS)}, got {task!r}", field=f"{where}.task")
        backend = data.get("backend", BACKENDS[task][0])
        if backend not in BACKENDS[task]:
            raise InvalidInputError(
                f"task {task} is served by {', '.join(BACKENDS[task])}, not {backend!r}",
                field=f"{where}.backend",
            )
        versions = data.get("versions")
        if isinstance(versions, str):
            versions = {"1": versions}
        if not isinstance(versions, dict) or not versions:
            raise InvalidInputError("must map version names to sources", field=f"{where}.versions")
        for version, source in versions.items():
            if not isinstance(version, str) or not _NAME.match(version):
                raise InvalidInputError("version names are like model names", field=f"{where}.versions")
            if not isinstance(source, str) or not source.strip():
                raise InvalidInputError(
                    "must be a path or package:<module>/<file>", field=f"{where}.versions.{version}"
                )
        active = data.get("active", next(iter(versions)))
        if active not in versions:
            raise InvalidInputError(f"{active!r} is not one of the versions", field=f"{where}.active")
        device = str(data.get("device", "auto")).lower()
        if not _DEVICE.match(device):
            raise InvalidInputError(
                f"must be auto, cpu, cuda or cuda:N, got {device!r}", field=f"{where}.device"
            )
        precision = str(data.get("precision", "auto")).lower()
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
        if not isinstance(warmup, list) or not all(isinstance(item, str) for item in warmup):
            raise InvalidInputError("must be a list of strings", field=f"{where}.warmup")
        options = data.get("options", {})
        if not isinstance(options, dict):
            raise InvalidInputError("must be a mapping", field=f"{where}.options")
        return cls(name, task, backend, dict(versions), active, device, precision, load_at_start,
                   list(warmup), dict(options), pinned)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_source(source: str, data_dir: Path) -> Path:
    """The file or folder a source names: `package:<module>/<path>` inside an installed package
    (found without importing it: some weight packages import heavy plug-in frameworks), an
    absolute path, or a path relative to the data dir."""
    if source.startswith("package:"):
        module, _, inner = source.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(module) if module.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise InvalidInputError(
                f"package {module!r} is not installed (pip install {module.replace('_', '-')})",
                field="source",
            )
        path = Path(next(iter(spec.submodule_search_locations))) / inner
    else:
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = data_dir / path
    if not path.exists():
        raise InvalidInputError(f"{source!r}: {path} does not exist", field="source")
    return path


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

    def _save(self) -> None:
        header = (
            "# altlas model registry (written by altlas; edit with the server stopped, or over the API)\n"
        )
        body = yaml.safe_dump({"models": [m.to_dict() for m in self._models.values()]}, sort_keys=False)
        write_atomically(self.path, header + body)

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
            self._models[spec.name] = spec
            self._save()
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
            self._models[name] = spec
            self._save()
        return spec
