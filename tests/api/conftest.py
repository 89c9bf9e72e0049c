"""A real altlas server on loopback, started as a user would: `python -m altlas serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A client's read timeout: generous, so that only a hung server fails a test, never a busy machine.
TIMEOUT = 300


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=TIMEOUT)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()

    def engine_pids(self) -> list[int]:
        """The engine processes the server started (python -m altlas.engine), found in /proc."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            if parent == self.process.pid and b"altlas.engine" in command:
                found.append(int(entry.name))
        return found

    def pids(self) -> list[int]:
        """The server's processes: its own and its engines'."""
        return [self.process.pid, *self.engine_pids()]


def start_server(data_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> Server:
    """A server on a free port; `env`: environment variables besides this process's own."""
    port = free_port()
    env = {**os.environ, "ALTLAS_LOG_LEVEL": "INFO", **(env or {})}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "altlas",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Server(url, data_dir, process, log_path)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


T = TypeVar("T")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def peak_rss_growth(pids: list[int], action: Callable[[], T]) -> tuple[int, T]:
    """(bytes the processes' peak resident memory rose above their resident memory at the start
    while `action` ran, summed over them (at least their peak together), what `action`
    returned). Linux: the peaks are reset first (clear_refs 5), so what other tests did to the
    processes earlier does not count."""
    before = {}
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before[pid] = _status_kib(pid, "VmRSS")
    result = action()
    return sum(_status_kib(pid, "VmHWM") - rss for pid, rss in before.items()) * 1024, result


def wait_until(check: Callable[[], T], timeout: float = 900, every: float = 0.1) -> T:
    """`check()`'s first true value, asked every `every` s. The deadline is there only so that a
    broken server fails the test instead of hanging it: generous, never a measure of speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("server")
    srv = start_server(root / "data", root / "server.log")
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
