"""Contract tests: the README's set-up commands, CI, and public module exports."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import altlas

ROOT = Path(__file__).resolve().parents[2]


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", setup, flags=re.S)]


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    serve, test = commands
    assert "altlas serve" in serve and "-c constraints.txt" in serve
    assert "pytest" in test and "-c constraints.txt" in test


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert setup_commands()[1] in ci.splitlines()


def test_constraints_pin_torch() -> None:
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().splitlines()


def test_every_module_exports_what_it_lists() -> None:
    for info in pkgutil.walk_packages(altlas.__path__, "altlas."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{info.name}.__all__ lists missing {name}"
