"""Engine processes (python -m altlas.engine) under their supervisor, on CPU with the shipped
all-MiniLM-L6-v2: an engine serves a client over ipc; SIGKILLed, it is started again and the
same client is served by the new one, while the request it was working on fails at once with
EngineUnavailableError (503); stopped, it exits; and it dies with its parent, even when the
parent is SIGKILLed (no orphan burning the machine's cores)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from altlas.engine.client import EngineClient
from altlas.engine.supervisor import EXIT_UNUSABLE, EngineStartError, EngineSupervisor
from altlas.errors import EngineUnavailableError
from altlas.orchestrator.registry import default_registry_text

MODEL = "all-minilm-l6-v2"


def engine_env(tmp_path: Path) -> dict[str, str]:
    """A data folder whose registry holds MiniLM only (loaded at start), and the engine's settings."""
    data = tmp_path / "data"
    data.mkdir()
    registry = yaml.safe_load(default_registry_text())
    registry["models"] = [m for m in registry["models"] if m["name"] == MODEL]
    (data / "models.yaml").write_text(yaml.safe_dump(registry))
    return {
        **os.environ, "ALTLAS_DATA_DIR": str(data), "ALTLAS_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
        "ALTLAS_LOG_LEVEL": "WARNING",
    }  # fmt: skip


def until(check: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by a dead parent's init) counts as gone
        return (Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]) != "Z"
    except OSError:
        return False


def run_with_an_engine(
    tmp_path: Path, scenario: Callable[[EngineSupervisor, EngineClient], Awaitable[None]]
) -> list[int | None]:
    """`scenario` with one engine under its supervisor and a client of it; the engines' pids
    at the end (all stopped on return)."""
    supervisor = EngineSupervisor(tmp_path, count=1, env=engine_env(tmp_path))
    supervisor.start()
    try:

        async def run() -> None:
            async with EngineClient(supervisor.addresses[0]) as client:
                await scenario(supervisor, client)

        asyncio.run(run())
        return supervisor.pids()
    finally:
        supervisor.stop()


def test_a_killed_engine_is_started_again_and_serves_the_same_client(tmp_path: Path) -> None:
    async def scenario(supervisor: EngineSupervisor, client: EngineClient) -> None:
        first = await client.embed(MODEL, ["Chrome'u aç"], 300)
        old = supervisor.pids()[0]
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await asyncio.to_thread(until, lambda: supervisor.pids()[0] not in (None, old), "a new engine")
        assert supervisor.restarts == [1]
        again = await client.embed(MODEL, ["Chrome'u aç"], 300)  # the socket reconnects by itself
        np.testing.assert_allclose(again.vectors, first.vectors, rtol=0, atol=1e-6)

    pids = run_with_an_engine(tmp_path, scenario)
    assert all(pid is not None and not alive(pid) for pid in pids)


def test_engines_die_with_their_parent_even_when_it_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from altlas.engine.supervisor import EngineSupervisor\n"
        f"supervisor = EngineSupervisor(Path({str(tmp_path)!r}), count=2)\n"
        "supervisor.start()\n"
        "print(*supervisor.pids(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], env=engine_env(tmp_path), stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        engines = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(engines) == 2 and all(alive(pid) for pid in engines)
        parent.kill()
        parent.wait()
        until(lambda: not any(alive(pid) for pid in engines), "the engines exiting")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_the_request_an_engine_dies_on_fails_at_once_with_503s_error(tmp_path: Path) -> None:
    async def scenario(supervisor: EngineSupervisor, client: EngineClient) -> None:
        await client.embed(MODEL, ["warm up"], 300)  # loaded, connected
        pid = supervisor.pids()[0]
        assert pid is not None
        idle = cpu_seconds(pid)
        texts = [f"komut {i}: " + "dosyayı aç ve kaydet " * 20 for i in range(4000)]  # ~a minute of CPU
        work = asyncio.create_task(client.embed(MODEL, texts, 600))
        await asyncio.to_thread(until, lambda: cpu_seconds(pid) > idle + 1.0, "the engine at work")
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EngineUnavailableError) as failed:
            await asyncio.wait_for(work, 120)  # at once, in truth: the connection drops
        assert failed.value.field == "model" and failed.value.retry_after_s == 1.0

    run_with_an_engine(tmp_path, scenario)


@pytest.mark.parametrize("watched_first", [True, False])
def test_an_engine_that_cannot_start_is_not_started_again_and_ready_says_so(
    tmp_path: Path, watched_first: bool
) -> None:
    """A damaged collection: the engine tells why in one line and exits with EXIT_UNUSABLE;
    `ready` raises with that status whether or not the watcher saw the exit first, and no
    engine is started again."""
    env = engine_env(tmp_path)
    folder = Path(env["ALTLAS_DATA_DIR"]) / "collections" / "docs"
    folder.mkdir(parents=True)
    (folder / "collection.json").write_text('{"model": "x", "te')
    supervisor = EngineSupervisor(tmp_path, count=1, env=env)
    supervisor.start()
    try:
        if watched_first:
            until(lambda: supervisor.pids() == [None], "the engine exited")
            time.sleep(1.0)  # the watcher has looked at it (every 0.2 s)
        with pytest.raises(EngineStartError) as caught:
            supervisor.ready(120)
        assert caught.value.code == EXIT_UNUSABLE
        assert supervisor.restarts == [0] and supervisor.pids() == [None]
    finally:
        supervisor.stop()


def test_an_engine_stops_on_a_burst_of_sigterms(tmp_path: Path) -> None:
    """Its parent's death signal and a SIGTERM arrive together (and more): the engine still stops.
    Its handler once set a threading.Event, whose lock a second signal took again: hung for good."""
    env = engine_env(tmp_path)
    address = tmp_path / "engine-9"
    command = [
        sys.executable,
        "-m",
        "altlas.engine",
        "--address",
        f"ipc://{address}",
        "--parent",
        str(os.getpid()),
    ]
    engine = subprocess.Popen(command, env=env)
    try:
        until(address.exists, "the engine serves")
        for _ in range(200):
            engine.send_signal(signal.SIGTERM)
        assert engine.wait(120) == 0
    finally:
        engine.kill()
        engine.wait()
