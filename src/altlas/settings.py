"""One frozen settings object, read from ALTLAS_* environment variables and CLI flags."""

from __future__ import annotations

import os
import socket
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
    # scheduling (issue 6): dynamic batching per model and device, bounded queues, time limits
    batching: bool = True  # off: every request runs alone (the baseline batching is measured against)
    batch_max_tokens: int = 0  # tokens gathered per batch; 0 = by device (GPU 32,768, CPU 4,096)
    batch_max_wait_ms: float = 2.0  # how long the oldest request waits for others to join its batch
    queue_max: int = 1024  # requests waiting per model; one more gets 429 with Retry-After
    request_timeout_s: float = 60.0  # a request not answered by then gets 504 (0 = no limit)
    max_concurrent_requests: int = 1024  # /v1 requests in the server at once; more get 429 (0 = no cap)
    api_keys: tuple[str, ...] = ()  # when set, /v1 routes need "Authorization: Bearer <one of them>"
    # Keys for model administration (register, load, unload, activate, delete). With keys of
    # either kind set, those routes need one of these (none set: nobody may administer models).
    # With no keys at all, the server is open, as for a single user on loopback.
    admin_keys: tuple[str, ...] = ()
    # Folders a model registered over the API may be read from, besides <data_dir>/models.
    model_roots: tuple[str, ...] = ()
    # Slow clients: a request body not wholly received this long after its head gets 408; a
    # connection that sends no complete request head this long after opening (or after its
    # last answer) is closed. Neither holds a concurrency slot meanwhile.
    body_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    metrics_require_key: bool = False  # whether /metrics needs a key too (when keys are set)
    job_workers: int = 2  # threads running async jobs
    job_result_ttl_s: float = 7 * 24 * 3600.0  # finished jobs and their results are kept this long
    # How long a thread may hold the GIL while another waits (Python's default: 5 ms). A model's
    # runner thread gives the GIL up in every torch call; with the event loop busy it waited up
    # to this long each time to get it back, which made a GPU forward wait on the HTTP side.
    gil_switch_interval_ms: float = 0.5
    # HTTP front processes (altlas.api.front): 0 = this process reads HTTP itself. N > 0: N
    # processes share the port and take the HTTP work of the hot lanes off this one (Linux).
    http_workers: int = 0

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
        if not 0 <= self.http_workers <= 64:
            raise InvalidInputError(f"must be 0-64, got {self.http_workers}", field="http_workers")
        if self.http_workers and not (hasattr(socket, "SO_REUSEPORT") and hasattr(socket, "send_fds")):
            raise InvalidInputError(
                "front processes need Linux (SO_REUSEPORT, SCM_RIGHTS)", field="http_workers"
            )
        for name in ("batch_max_tokens", "queue_max", "max_concurrent_requests", "job_workers"):
            if getattr(self, name) < 0 or (name in ("queue_max", "job_workers") and getattr(self, name) < 1):
                raise InvalidInputError(f"must be a positive number, got {getattr(self, name)}", field=name)
        if not self.gil_switch_interval_ms > 0:
            raise InvalidInputError(
                f"must be > 0, got {self.gil_switch_interval_ms}", field="gil_switch_interval_ms"
            )
        for name in ("body_timeout_s", "header_timeout_s"):
            if not getattr(self, name) > 0:
                raise InvalidInputError(f"must be > 0, got {getattr(self, name)}", field=name)
        for name in ("batch_max_wait_ms", "request_timeout_s", "job_result_ttl_s"):
            if not getattr(self, name) >= 0:
                raise InvalidInputError(f"must be >= 0, got {getattr(self, name)}", field=name)
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
