"""Engine processes started, watched and restarted by the process that serves HTTP.

`EngineSupervisor` starts `count` engine processes (`python -m altlas.engine`), each serving on
its own ipc endpoint under `run_dir`; a watcher thread starts again one that exits while the
supervisor runs, after a pause that doubles with each quick death (0.5 s up to 10 s, back to
0.5 s once one has lived a minute), and counts the restarts; but not one that exits with
EXIT_UNUSABLE (settings or data it cannot start with: starting it again would not help). `ready`
waits for the engines' first start: the server listens only once its engines do, and stops if
one cannot start. The engines die with the supervisor's process (even SIGKILLed: they ask for a
parent-death signal). `stop` sends them SIGTERM (they finish what they accepted) and kills any
still there after `timeout_s`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["EXIT_UNUSABLE", "EngineStartError", "EngineSupervisor"]

EXIT_UNUSABLE = 2  # altlas.engine.__main__'s: settings or data it cannot start with

log = logging.getLogger("altlas.engine")

FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 10.0
STABLE_S = 60.0  # an engine that lived this long died for a reason of its own: no back-off


class EngineStartError(RuntimeError):
    """An engine exited before it served (`code`: its exit status), or did not serve in time."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class EngineSupervisor:
    """`count` engine processes serving on `addresses` (ipc endpoints under `run_dir`), with the
    environment `env` (their ALTLAS_* settings; default: this process's)."""

    def __init__(self, run_dir: Path, count: int = 1, env: Mapping[str, str] | None = None) -> None:
        self.addresses = [f"ipc://{run_dir}/engine-{index}" for index in range(count)]
        self.env = dict(os.environ if env is None else env)
        self.restarts = [0] * count
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self._started_at = [0.0] * count
        self._pauses = [FIRST_PAUSE_S] * count
        self._given_up: set[int] = set()  # engines that exited with EXIT_UNUSABLE
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        for index in range(len(self.addresses)):
            self._spawn(index)
        self._watcher = threading.Thread(target=self._watch, name="altlas-engine-watch", daemon=True)
        self._watcher.start()

    def ready(self, timeout_s: float) -> None:
        """Return once every engine serves (its socket is bound: its models' manager, collections
        and command index were read); EngineStartError if one exits first or takes longer than
        `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        for index, address in enumerate(self.addresses):
            path = Path(address.removeprefix("ipc://"))
            while not path.exists():
                with self._lock:
                    process = self._processes[index]
                if process is not None and (code := process.poll()) is not None:
                    raise EngineStartError(f"engine {index} exited with status {code} before it served", code)
                if time.monotonic() > deadline:
                    raise EngineStartError(f"engine {index} did not serve within {timeout_s:g} s", 1)
                time.sleep(0.05)

    def pids(self) -> list[int | None]:
        """Each engine's process id (None between a death and its restart)."""
        with self._lock:
            return [p.pid if p is not None and p.poll() is None else None for p in self._processes]

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to every engine; SIGKILL to those still there after `timeout_s` seconds."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            processes = [p for p in self._processes if p is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, index: int) -> None:
        address, parent = self.addresses[index], str(os.getpid())
        command = [sys.executable, "-m", "altlas.engine", "--address", address, "--parent", parent]
        process = subprocess.Popen(command, env=self.env)
        with self._lock:
            self._processes[index] = process
            self._started_at[index] = time.monotonic()
        log.info("engine started", extra={"engine": index, "pid": process.pid})

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            for index, process in enumerate(list(self._processes)):
                if process is None or process.poll() is None or index in self._given_up:
                    continue
                if process.returncode == EXIT_UNUSABLE:  # it told why on stderr; it would only fail again
                    log.error("engine cannot start; not starting it again", extra={"engine": index})
                    self._given_up.add(index)  # kept, exited: `ready` sees its status
                    continue
                lived = time.monotonic() - self._started_at[index]
                self._pauses[index] = FIRST_PAUSE_S if lived >= STABLE_S else self._pauses[index]
                pause = self._pauses[index]
                log.warning(
                    "engine exited; starting it again",
                    extra={"engine": index, "pid": process.pid, "code": process.returncode, "pause_s": pause},
                )
                if self._stopping.wait(pause):
                    return
                self._pauses[index] = min(MAX_PAUSE_S, pause * 2)
                self.restarts[index] += 1
                self._spawn(index)
