"""`altlas jobs` as a user runs it: CLI processes against a real server on loopback."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from altlas.api.job_kinds import MAX_BULK_LINES
from altlas.cli.jobs import MAX_POLL_S, TRANSIENT_GRACE_S, JobsCliError, poll
from tests.api.conftest import Server, start_server

# The most lines a bulk job takes, each a long Turkish command: about 50 s of segmenting on one
# worker of a 2-core machine (2,000 lines/s), ten times the few seconds the test needs it running.
BIG_JOB_LINES = MAX_BULK_LINES
BIG_JOB_LINE = (
    "Chrome'u aç ve hava durumunu ara {i}, sonra ekran görüntüsü al ve masaüstüne kaydet, "
    "ardından not defterini aç ve 'rapor {i}' yaz"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("jobs-cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALTLAS_SERVICES", "segmentation")  # no models to load: a quick start
        patch.setenv("ALTLAS_JOB_WORKERS", "1")
        srv = start_server(root / "data", root / "server.log")
    yield srv
    srv.stop()


def jobs(
    server: Server, *args: str, stderr: int | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALTLAS_URL": server.url}
    env.pop("ALTLAS_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "altlas", "jobs", *args],
        capture_output=stderr is None,
        stdout=subprocess.PIPE if stderr is not None else None,
        stderr=stderr,
        text=True,
        timeout=timeout,
        env=env,
    )


def submit_segment(server: Server, command: str, *extra: str) -> str:
    result = jobs(server, "submit", "segment", "--json", json.dumps({"command": command}), "--quiet", *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_segment_bulk_from_a_text_file_waits_and_writes_jsonl(server: Server, tmp_path: Path) -> None:
    commands = [f"open firefox and search for hotels in city {i}" for i in range(50)]
    source = tmp_path / "commands.txt"
    source.write_text("\n\n".join(commands) + "\n   \n", encoding="utf-8")  # blank lines are skipped
    output = tmp_path / "plans.jsonl"

    result = jobs(server, "submit", "segment-bulk", "--input", str(source), "--wait", "--output", str(output))

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    plans = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(plans) == 50
    assert all(plan["segments"] for plan in plans)
    assert [plan["command"] for plan in plans] == commands
    assert sorted(p.name for p in tmp_path.iterdir()) == ["commands.txt", "plans.jsonl"]  # no .part left


def test_segment_job_submit_status_wait_list_cancel(server: Server, tmp_path: Path) -> None:
    submitted = jobs(server, "submit", "segment", "--json", '{"command": "open notepad then type hello"}')
    assert submitted.returncode == 0, submitted.stderr
    view = json.loads(submitted.stdout)
    job_id = view["id"]
    assert view["kind"] == "segment" and view["status"] in ("queued", "running", "succeeded")

    status = jobs(server, "status", job_id)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["id"] == job_id

    waited = jobs(server, "wait", job_id)
    assert waited.returncode == 0, waited.stderr
    plan = json.loads(waited.stdout)["plan"]
    assert [s["task_type"] for s in plan["segments"]][:1] == ["open"]

    saved = jobs(server, "wait", job_id, "--output", str(tmp_path / "result.json"))
    assert saved.returncode == 0 and saved.stdout == "", saved.stderr
    assert json.loads((tmp_path / "result.json").read_text())["plan"]["id"] == plan["id"]

    listed = jobs(server, "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(job_id))
    assert line.split()[1:4] == ["segment", "succeeded", "-"]

    cancelled = jobs(server, "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "succeeded"
    assert "nothing to cancel" in cancelled.stderr
    assert json.loads(jobs(server, "status", job_id).stdout)["status"] == "succeeded"


def test_quiet_prints_the_id_and_an_idempotency_key_returns_the_same_job(server: Server) -> None:
    first = submit_segment(server, "take a screenshot", "--idempotency-key", "cli-test-key")
    again = submit_segment(server, "take a screenshot", "--idempotency-key", "cli-test-key")
    assert len(first) == 32 and again == first


def test_list_filters_and_follows_the_cursor_with_all(server: Server) -> None:
    ids = {submit_segment(server, f"open app number {i}", "--priority", "9") for i in range(3)}
    every = jobs(server, "list", "--kind", "segment", "--limit", "500").stdout.splitlines()
    assert ids <= {line.split()[0] for line in every}

    one_page = jobs(server, "list", "--kind", "segment", "--limit", "1")
    assert one_page.returncode == 0, one_page.stderr
    assert len(one_page.stdout.splitlines()) == 1

    paged = jobs(server, "list", "--kind", "segment", "--limit", "1", "--all")
    assert paged.returncode == 0, paged.stderr
    assert [line.split()[0] for line in paged.stdout.splitlines()] == [line.split()[0] for line in every]
    assert all(line.split()[1] == "segment" for line in every)


def test_a_failed_or_expired_job_exits_1_with_its_error(server: Server) -> None:
    failed = jobs(
        server, "submit", "segment", "--json", '{"command": "open it", "mode": "Chaos"}', "--wait", "--quiet"
    )
    assert failed.returncode == 1
    assert failed.stdout == ""
    lines = failed.stderr.splitlines()  # --quiet: no "submitted" note, only the outcome
    assert len(lines) == 1 and "failed: chaos_level: is required when mode is Chaos" in lines[0], lines

    expired = jobs(server, "submit", "segment", "--json", '{"command": "x"}', "--deadline", "1", "--wait")
    assert expired.returncode == 1
    assert "expired: the deadline passed" in expired.stderr.splitlines()[-1]


def test_wait_times_out_shows_progress_on_a_terminal_and_a_cancelled_job_exits_1(
    server: Server, tmp_path: Path
) -> None:
    source = tmp_path / "big.txt"
    source.write_text("\n".join(BIG_JOB_LINE.format(i=i) for i in range(BIG_JOB_LINES)))
    job_id = jobs(server, "submit", "segment-bulk", "--input", str(source), "--quiet").stdout.strip()
    try:
        plain = jobs(server, "wait", job_id, "--timeout", "0.3")
        assert plain.returncode == 2
        lines = plain.stderr.splitlines()  # not a terminal: no progress bar, one line
        assert len(lines) == 1 and lines[0].startswith(f"altlas: job {job_id} still "), lines
        assert "after 0.3 s" in lines[0]

        code, terminal = run_with_terminal_stderr(server, "wait", job_id, "--timeout", "2.5")
        assert code == 2
        assert "segment-bulk:" in terminal and f"/{BIG_JOB_LINES}" in terminal, terminal
    finally:
        cancelled = jobs(server, "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] in ("running", "cancelled")

    waited = jobs(server, "wait", job_id, "--timeout", "20")
    assert waited.returncode == 1
    assert waited.stderr.strip() == f"altlas: job {job_id} cancelled"


def run_with_terminal_stderr(server: Server, *args: str) -> tuple[int, str]:
    """Run `altlas jobs ARGS` with stderr on a pseudo-terminal (100 columns); its exit code and stderr."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:  # read as it comes: a full pty buffer would block the CLI
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # EIO: every writer closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        result = jobs(server, *args, stderr=follower)
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    return result.returncode, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("submit", "frobnicate", "--json", "{}"), "kind: unknown job kind 'frobnicate'"),
        (("submit", "segment-bulk", "--input", "/nonexistent/commands.txt"), "--input: cannot read"),
        (("submit", "segment", "--json", "{not json"), "--json: not valid JSON"),
        (("submit", "segment", "--json", "[1, 2]"), "--json: give a JSON object"),
        (("submit", "segment"), "--input FILE or --json JSON"),
        (("submit", "segment", "--json", '{"command": "x"}', "--priority", "12"), "priority"),
        (("submit", "segment", "--json", '{"command": "x"}', "--deadline", "soon"), "--deadline"),
        (("submit", "segment", "--json", '{"command": "x"}', "--output", "x.json"), "--wait"),
        (("submit", "segment", "--json", '{"commmand": "x"}'), "input.command: Field required"),
        (("status", "0" * 32), "no job"),
        (("wait", "not-an-id"), "id"),
        (("list", "--limit", "0"), "limit"),
        (("list", "--status", "done"), "invalid choice"),
        (("frobnicate",), "invalid choice"),
        (("list", "--url", "http://127.0.0.1:9"), "cannot reach http://127.0.0.1:9: connection refused"),
    ],
)
def test_usage_errors_exit_2_with_one_line(server: Server, args: tuple[str, ...], needle: str) -> None:
    result = jobs(server, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("altlas: error:"), result.stderr
    assert needle in lines[0]
    assert result.stdout == ""


class FakeServer:
    """Views served in order; an exception in the list is raised instead. Time passes only in sleep()."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.now = 0.0
        self.sleeps: list[float] = []

    def fetch(self) -> dict[str, Any]:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return {"id": "j", "kind": "segment", "status": answer}

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_poll_backs_off_to_once_a_second_and_stops_at_the_timeout() -> None:
    fake = FakeServer(["running"])
    view = poll(fake.fetch, timeout_s=5, sleep=fake.sleep, clock=lambda: fake.now)
    assert view["status"] == "running"
    assert fake.sleeps[:3] == pytest.approx([0.1, 0.15, 0.225])
    assert max(fake.sleeps) == MAX_POLL_S
    assert sum(fake.sleeps) == pytest.approx(5)


def test_poll_rides_out_a_restarting_server_but_not_a_wrong_url_or_a_4xx() -> None:
    gone = JobsCliError("cannot reach http://x: connection refused", transient=True)
    fake = FakeServer(["running", gone, gone, "succeeded"])
    assert poll(fake.fetch, timeout_s=None, sleep=fake.sleep, clock=lambda: fake.now)["status"] == "succeeded"

    down = FakeServer(["running", gone])
    with pytest.raises(JobsCliError, match="connection refused"):  # not back within the grace period
        poll(down.fetch, timeout_s=None, sleep=down.sleep, clock=lambda: down.now)
    assert TRANSIENT_GRACE_S < sum(down.sleeps) < TRANSIENT_GRACE_S + 2 * MAX_POLL_S

    with pytest.raises(JobsCliError):  # the first answer must come: a wrong URL fails at once
        poll(FakeServer([gone]).fetch, timeout_s=None, sleep=lambda s: None)
    bad = FakeServer(["running", JobsCliError("id: no job (HTTP 404)")])
    with pytest.raises(JobsCliError, match="404"):
        poll(bad.fetch, timeout_s=None, sleep=bad.sleep, clock=lambda: bad.now)
