"""One frozen settings object, read from ALTLAS_* environment variables and CLI flags.

`Settings.from_env()` reads the environment (pydantic-settings' env source, prefix ALTLAS_)
and lays CLI flags over it; `Settings(...)` takes only its arguments, so code and tests that
build one never depend on the variables of the process they run in. A bad value is an
InvalidInputError naming the variable (ALTLAS_PORT: cannot read 'x') or the setting
(port: must be 0-65535, ...), which the CLI prints as one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from altlas.errors import InvalidInputError

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "ALTLAS_"
_TRUE = ("1", "true", "yes", "on")  # any other text is false
Names = Annotated[tuple[str, ...], NoDecode]  # a comma-separated list in the environment


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    max_body_bytes: int = 32 * 1024 * 1024  # a full batch of 1000 long Turkish commands fits
    max_batch_commands: int = 1000
    services: Names = ("segmentation", "embeddings", "orchestrator")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | fp16 | bf16
    gpu_memory_gb: float = 0.0  # cap on this process's GPU memory; 0 = the whole card
    # The registered embedding model that /v1/embed, /v1/similar-commands, /v1/dedupe and the bulk
    # jobs' type prototypes lease (the model manager owns it, as every model).
    command_embedding_model: str = "all-minilm-l6-v2"
    # A sentence-transformers folder: the model of `altlas embed` (empty: the shipped
    # all-MiniLM-L6-v2), and the one the command embedding model loads from in place of its
    # registered source (empty: the registry's).
    embedding_model: str = ""
    # scheduling (issue 6): dynamic batching per model and device, bounded queues, time limits
    batching: bool = True  # off: every request runs alone (the baseline batching is measured against)
    batch_max_tokens: int = 0  # tokens gathered per batch; 0 = by device (GPU 32,768, CPU 4,096)
    batch_max_wait_ms: float = 2.0  # how long the oldest request waits for others to join its batch
    queue_max: int = 1024  # requests waiting per model; one more gets 429 with Retry-After
    request_timeout_s: float = 60.0  # a request not answered by then gets 504 (0 = no limit)
    max_concurrent_requests: int = 1024  # /v1 requests in the server at once; more get 429 (0 = no cap)
    api_keys: Names = ()  # when set, /v1 routes need "Authorization: Bearer <one of them>"
    # Keys for model administration (register, load, unload, activate, delete). With keys of
    # either kind set, those routes need one of these (none set: nobody may administer models).
    # With no keys at all, the server is open, as for a single user on loopback.
    admin_keys: Names = ()
    # Folders a model registered over the API may be read from, besides <data_dir>/models.
    model_roots: Names = ()
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
    # cuDNN's attention (torch's first choice on Hopper) builds an execution plan for every new
    # batch shape, ~2.6 ms of host time per layer (profiled: 100k texts, H200), and batches of
    # requests rarely repeat a shape; flash and memory-efficient attention do not. Off by default.
    cudnn_sdpa: bool = False
    # Model serving (`altlas serve`): an engine process owns the models (loads, batchers, GPU
    # memory) and the API process forwards requests to it; 0: the API process serves the models
    # itself. A request made while the engine is (re)starting waits up to engine_start_timeout_s
    # for it, then gets 503: a model's load or an engine's start is never counted against the
    # request's own time limit.
    engines: int = 1
    engine_start_timeout_s: float = 300.0
    # The `altlas jobs` client: the server's address (empty: http://127.0.0.1:8080) and its key.
    url: str = ""
    api_key: str = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the arguments: the environment is read by from_env, never behind a caller's back."""
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ALTLAS_* variables, then explicit overrides (CLI flags); None means unset."""
        env = _Environ(cls, os.environ if environ is None else environ)()
        given = {name: value for name, value in overrides.items() if value is not None}
        try:
            return cls(**{**env, **given})
        except ValidationError as exc:
            raise _invalid(exc, env, given) from None

    def environment(self) -> dict[str, str]:
        """These settings as ALTLAS_* variables (what from_env reads back as the same settings):
        how a process this one starts (an engine) gets them."""
        env = {}
        for name, value in self.model_dump().items():
            if isinstance(value, tuple):
                text = ",".join(value)
            elif isinstance(value, bool):
                text = "1" if value else "0"
            else:
                text = str(value)
            env[ENV_PREFIX + name.upper()] = text
        return env

    @field_validator("batching", "metrics_require_key", "cudnn_sdpa", mode="before")
    @classmethod
    def _flag(cls, value: object) -> object:
        return value.strip().lower() in _TRUE if isinstance(value, str) else value

    @field_validator("services", "api_keys", "admin_keys", "model_roots", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _path(cls, value: object) -> object:
        return Path(value).expanduser() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _checked(self) -> Settings:
        self.check()
        return self

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidInputError(f"must be 0-65535, got {self.port}", field="port")
        if self.gpu_memory_gb < 0:
            raise InvalidInputError(
                f"must be >= 0 (0 = no cap), got {self.gpu_memory_gb}", field="gpu_memory_gb"
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
        if self.engines not in (0, 1):  # several engines: replicas (issue 20, step 14)
            raise InvalidInputError(f"must be 0 or 1, got {self.engines}", field="engines")
        if not self.engine_start_timeout_s > 0:
            raise InvalidInputError(
                f"must be > 0, got {self.engine_start_timeout_s}", field="engine_start_timeout_s"
            )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise InvalidInputError(
                f"must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}", field="log_level"
            )


class _Environ(EnvSettingsSource):
    """pydantic-settings' env source over a given mapping (os.environ, or a test's dict)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # names in any case, as the source matches them (case_sensitive is off); empty means unset
        return {name.lower(): value for name, value in self._environ.items() if value}


def _invalid(exc: ValidationError, env: Mapping[str, Any], given: Mapping[str, Any]) -> InvalidInputError:
    """The first bad value, named as the user wrote it: ALTLAS_X for a variable, x for a flag."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        return InvalidInputError("no such setting", field=name)
    if name in given:
        return InvalidInputError(f"cannot read {given[name]!r}", field=name)
    return InvalidInputError(f"cannot read {env.get(name)!r}", field=ENV_PREFIX + name.upper())
