"""What importing a module brings with it: the HTTP layer must not load torch (issue 20: API
processes in front of engine processes, which alone hold the models)."""

from __future__ import annotations

import subprocess
import sys


def test_the_http_app_imports_without_torch() -> None:
    code = "import altlas.api.app, sys; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
