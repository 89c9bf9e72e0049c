"""One frozen settings object, read from ALTLAS_* environment variables and CLI flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from altlas.errors import InvalidInputError

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "ALTLAS_"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    max_body_bytes: int = 32 * 1024 * 1024  # a full batch of 1000 long Turkish commands fits
    max_batch_commands: int = 1000
    services: tuple[str, ...] = ("segmentation", "embeddings", "orchestrator")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | fp16 | bf16
    gpu_memory_gb: float = 0.0  # cap on this process's GPU memory; 0 = the whole card
    embedding_model: str = ""  # a sentence-transformers folder; empty = the shipped all-MiniLM-L6-v2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ALTLAS_* variables, then explicit overrides (CLI flags); None means unset."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, getattr(cls(), f.name))
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        settings.check()
        return settings

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidInputError(f"must be 0-65535, got {self.port}", field="port")
        if self.gpu_memory_gb < 0:
            raise InvalidInputError(
                f"must be >= 0 (0 = no cap), got {self.gpu_memory_gb}", field="gpu_memory_gb"
            )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise InvalidInputError(
                f"must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}", field="log_level"
            )


def _parse(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw).expanduser()
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        raise InvalidInputError(f"cannot read {raw!r}", field=ENV_PREFIX + name.upper()) from None
