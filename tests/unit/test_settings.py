"""Settings: ALTLAS_* variables through pydantic-settings, CLI flags over them, and the process
switches that start-up code (never a constructor) sets from them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from pydantic_settings import BaseSettings

import altlas
from altlas.errors import InvalidInputError
from altlas.runtime.process import configure_process
from altlas.settings import Settings

SRC = Path(altlas.__file__).parent


def test_settings_are_one_frozen_pydantic_settings_object() -> None:
    settings = Settings.from_env({})
    assert isinstance(settings, BaseSettings)
    assert settings == Settings() and hash(settings) == hash(Settings())
    assert settings.model_config["env_prefix"] == "ALTLAS_"
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("port", " 9090 ", 9090),
        ("gpu_memory_gb", "1e1", 10.0),
        ("batch_max_wait_ms", "0.25", 0.25),
        ("batching", "0", False),
        ("batching", "off", False),
        ("batching", "anything else", False),
        ("metrics_require_key", " Yes ", True),
        ("metrics_require_key", "1", True),
        ("cudnn_sdpa", "on", True),
        ("services", " segmentation, embeddings,, ", ("segmentation", "embeddings")),
        ("api_keys", "k1,k2", ("k1", "k2")),
        ("api_keys", '["k1"]', ('["k1"]',)),  # a comma list, never JSON
        ("model_roots", "/srv/models", ("/srv/models",)),
        ("data_dir", "~/altlas", Path("~/altlas").expanduser()),
        ("log_level", "debug", "debug"),
        ("url", "http://10.0.0.2:8080", "http://10.0.0.2:8080"),
        ("api_key", "secret", "secret"),
    ],
)
def test_variables_parse_as_they_always_have(name: str, raw: str, value: object) -> None:
    settings = Settings.from_env({"ALTLAS_" + name.upper(): raw})
    assert getattr(settings, name) == value


def test_empty_variables_are_unset_and_flags_beat_variables() -> None:
    environ = {"ALTLAS_SERVICES": "", "ALTLAS_PORT": "9000", "ALTLAS_HOST": "0.0.0.0", "OTHER": "x"}
    settings = Settings.from_env(environ, port=7000, host=None)
    assert settings.services == Settings().services
    assert (settings.port, settings.host) == (7000, "0.0.0.0")  # None: the flag was not given


def test_settings_built_in_code_never_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTLAS_PORT", "9191")
    monkeypatch.setenv("ALTLAS_CUDNN_SDPA", "1")
    assert Settings(data_dir=Path("x")).port == 8080
    assert Settings.from_env().port == 9191 and Settings.from_env().cudnn_sdpa


@pytest.mark.parametrize(
    ("environ", "overrides", "message"),
    [
        ({"ALTLAS_PORT": "abc"}, {}, "ALTLAS_PORT: cannot read 'abc'"),
        ({"ALTLAS_GPU_MEMORY_GB": "lots"}, {}, "ALTLAS_GPU_MEMORY_GB: cannot read 'lots'"),
        ({"ALTLAS_PORT": "70000"}, {}, "port: must be 0-65535, got 70000"),
        ({"ALTLAS_JOB_WORKERS": "0"}, {}, "job_workers: must be a positive number, got 0"),
        ({"ALTLAS_HEADER_TIMEOUT_S": "0"}, {}, "header_timeout_s: must be > 0, got 0.0"),
        ({"ALTLAS_LOG_LEVEL": "loud"}, {}, "log_level: must be DEBUG, INFO, WARNING or ERROR, got 'loud'"),
        ({"ALTLAS_PORT": "abc"}, {"port": 1}, None),  # the flag wins; the variable is not read
        ({}, {"port": "x"}, "port: cannot read 'x'"),
    ],
)
def test_bad_values_are_invalid_input_naming_what_the_user_set(
    environ: dict[str, str], overrides: dict[str, object], message: str | None
) -> None:
    if message is None:
        assert Settings.from_env(environ, **overrides).port == 1
        return
    with pytest.raises(InvalidInputError) as caught:
        Settings.from_env(environ, **overrides)
    assert str(caught.value) == message


def test_settings_built_in_code_are_checked_too() -> None:
    with pytest.raises(InvalidInputError, match="port: must be 0-65535"):
        Settings(port=-1)


def test_a_bad_variable_is_one_line_and_exit_2_from_the_cli() -> None:
    env = {"ALTLAS_PORT": "abc", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "altlas", "jobs", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr == "altlas: error: ALTLAS_PORT: cannot read 'abc'\n"


def test_no_module_reads_an_altlas_variable_but_settings() -> None:
    reads = re.compile(r"""(environ\.get|getenv|environ\[)\(?\s*["']ALTLAS_""")
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "settings.py" and reads.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_configure_process_sets_the_switches_from_the_settings() -> None:
    interval, cudnn = sys.getswitchinterval(), torch.backends.cuda.cudnn_sdp_enabled()
    try:
        configure_process(Settings(gil_switch_interval_ms=2.0))
        assert sys.getswitchinterval() == pytest.approx(0.002)
        assert not torch.backends.cuda.cudnn_sdp_enabled()  # off unless ALTLAS_CUDNN_SDPA asks
        configure_process(Settings.from_env({"ALTLAS_CUDNN_SDPA": "1"}))
        assert torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        sys.setswitchinterval(interval)
        torch.backends.cuda.enable_cudnn_sdp(cudnn)


def test_settings_reach_a_started_process_as_the_same_settings(tmp_path: Path) -> None:
    """environment(): how `altlas serve` hands its settings (CLI flags included) to its engines."""
    settings = Settings(
        data_dir=tmp_path / "data dir", port=0, services=("segmentation", "embeddings"), api_keys=("a", "b"),
        batching=False, request_timeout_s=0.5, engines=0,
    )  # fmt: skip
    assert Settings.from_env(settings.environment()) == settings
    assert Settings.from_env(Settings().environment()) == Settings()


@pytest.mark.parametrize(("name", "value"), [("engines", "2"), ("engine_start_timeout_s", "0")])
def test_engine_settings_are_checked(name: str, value: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Settings.from_env({f"ALTLAS_{name.upper()}": value})
    assert caught.value.field == name
