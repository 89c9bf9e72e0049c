"""What importing a module brings with it: the HTTP layer must not load torch (issue 20: API
processes in front of engine processes, which alone hold the models)."""

from __future__ import annotations

import subprocess
import sys


def test_the_http_app_imports_without_torch() -> None:
    code = "import altlas.api.app, sys; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_an_api_process_in_front_of_engines_imports_without_torch() -> None:
    """What `altlas serve` loads in the API process when engines serve the models: the app, its
    routes and jobs, the engine client and the supervisor."""
    modules = [
        "altlas.api.app", "altlas.api.job_kinds", "altlas.engine.client", "altlas.engine.supervisor",
        *(f"altlas.api.routes.{name}" for name in (
            "embeddings", "jobs", "media", "metrics", "models", "openai_compat", "search", "segmentation",
            "similarity",
        )),
    ]  # fmt: skip
    code = f"import sys, {', '.join(modules)}; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
