"""`altlas jobs`: submit, watch, fetch and cancel async jobs on a running server (its /v1/jobs API).

HTTP goes through the standard library (urllib): httpx is a test dependency, not a runtime one.
Exit codes: 0 done; 1 the job failed, was cancelled or expired, or the server broke (5xx);
2 bad usage or input, a 4xx answer, an unreachable server, or a wait that ran out of time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from http.client import HTTPResponse
    from urllib.error import HTTPError

    from tqdm import tqdm

__all__ = ["JobsCliError", "add_jobs_parser", "poll", "run_jobs"]

JsonObject = dict[str, Any]
P = TypeVar("P", bound=argparse.ArgumentParser)

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_FAILED = 1
EXIT_USAGE = 2
FINISHED = ("succeeded", "failed", "cancelled", "expired")
STATUSES = ("queued", "running", *FINISHED)
# The bulk kinds: their input comes from a text file, one line each, and their result is a file.
LINE_FIELDS = {"segment-bulk": "commands", "embed": "input"}
RESULT_FILES = {"segment-bulk": "plans (JSONL)", "embed": "vectors (.npy)"}
REQUEST_TIMEOUT_S = 60.0  # a 100,000-line submission is validated before the server answers
FIRST_POLL_S = 0.1
MAX_POLL_S = 1.0
# Jobs survive a server restart, so a wait rides out an unreachable or overloaded server this long.
TRANSIENT_GRACE_S = 60.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class JobsCliError(Exception):
    """One line for stderr, the exit code that goes with it, and whether trying again may help."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE, *, transient: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.transient = transient


def add_jobs_parser(sub: argparse._SubParsersAction[P]) -> None:
    """`altlas jobs submit|status|wait|cancel|list`, each with --url and --api-key."""
    jobs = sub.add_parser("jobs", help="submit, watch, fetch and cancel async jobs on a running server")
    # The nested parsers inherit the caller's parser class, so their usage errors stay one line too.
    actions = jobs.add_subparsers(dest="jobs_command", metavar="COMMAND", required=True)
    common = type(jobs)(add_help=False)  # only lends its options (parents=) to each command
    server = common.add_argument_group("server")
    server.add_argument("--url", help=f"the altlas server (ALTLAS_URL; default {DEFAULT_URL})")
    server.add_argument(
        "--api-key", metavar="KEY", help="sent as 'Authorization: Bearer KEY' (ALTLAS_API_KEY)"
    )

    submit = actions.add_parser(
        "submit",
        parents=[common],
        help="submit a job; print its view, its id (--quiet) or, with --wait, its result",
    )
    submit.add_argument(
        "kind", metavar="KIND", help="segment, segment-bulk, embed, generate, search, vad, classify"
    )
    submit.add_argument(
        "--input",
        "-i",
        type=Path,
        metavar="FILE",
        help="segment-bulk, embed: a text file, one command/text a line (blank lines skipped); "
        "other kinds: a JSON file holding the input object ('-' for stdin)",
    )
    submit.add_argument(
        "--json",
        dest="input_json",
        metavar="JSON",
        help="the input object inline; for segment-bulk or embed with --input, the other fields "
        "(segment options, model)",
    )
    submit.add_argument("--priority", type=int, metavar="N", help="0-9, 9 runs first (server default 5)")
    submit.add_argument(
        "--deadline",
        metavar="WHEN",
        help="ISO 8601 date-time (local time if no zone) or unix seconds: not started by then, expired",
    )
    submit.add_argument(
        "--idempotency-key", metavar="KEY", help="the same key returns the same job instead of a new one"
    )
    submit.add_argument(
        "--quiet", "-q", action="store_true", help="print only the job id; no notes on stderr"
    )
    submit.add_argument("--wait", action="store_true", help="then wait for it, as 'altlas jobs wait' does")
    _add_wait_flags(submit)

    status = actions.add_parser("status", parents=[common], help="print a job's view (JSON)")
    status.add_argument("id", metavar="ID")

    wait = actions.add_parser(
        "wait",
        parents=[common],
        help="wait for a job to finish; print or save its result (exit 1 if it did not succeed)",
    )
    wait.add_argument("id", metavar="ID")
    _add_wait_flags(wait)

    cancel = actions.add_parser(
        "cancel", parents=[common], help="cancel a job (a running one stops at its next batch)"
    )
    cancel.add_argument("id", metavar="ID")

    listing = actions.add_parser("list", parents=[common], help="one line per job, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int, metavar="N", help="jobs per page, 1-500 (server default 50)")
    listing.add_argument("--all", action="store_true", help="every page, not just the first")


def _add_wait_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, metavar="S", help="give up waiting after S seconds (exit 2)")
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="write the result here: the JSONL or .npy file of segment-bulk and embed, JSON otherwise "
        "(default: the inline result JSON on stdout)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")


def run_jobs(args: argparse.Namespace) -> int:
    commands: dict[str, Callable[[Server, argparse.Namespace], int]] = {
        "submit": _submit,
        "status": _status,
        "wait": _wait,
        "cancel": _cancel,
        "list": _list,
    }
    try:
        code = commands[args.jobs_command](_server(args), args)
        sys.stdout.flush()  # here, inside the try: a reader that left shows up now, not at exit
        return code
    except JobsCliError as exc:
        print(f"altlas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `altlas jobs list --all | head`: the reader left, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exit's flush cannot fail
        return 0


@dataclass(frozen=True)
class Server:
    url: str
    api_key: str | None

    def call(self, method: str, path: str, body: JsonObject | None = None) -> tuple[int, Any]:
        """The HTTP status and the decoded JSON answer of a request that succeeded (2xx)."""
        with self._errors(), self._open(method, path, body) as response:
            status, raw = response.status, response.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            raise JobsCliError(
                f"{self.url}{path} did not answer JSON: is {self.url} an altlas server?"
            ) from None

    def chunks(self, path: str) -> Iterator[bytes]:
        """A download, a MiB at a time (a 100,000-line result need not fit in memory twice)."""
        with self._errors(), self._open("GET", path, None) as response:
            while chunk := response.read(1 << 20):
                yield chunk

    def _open(self, method: str, path: str, body: JsonObject | None) -> HTTPResponse:
        import urllib.request

        import altlas

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("User-Agent", f"altlas-cli/{altlas.__version__}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        handlers = []
        if urllib.parse.urlsplit(self.url).hostname in _LOOPBACK:
            # A proxy from http_proxy would reach its own loopback, not this machine's server.
            handlers.append(urllib.request.ProxyHandler({}))
        response: HTTPResponse = urllib.request.build_opener(*handlers).open(
            request, timeout=REQUEST_TIMEOUT_S
        )
        return response

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Network and HTTP failures as one-line JobsCliErrors."""
        import http.client
        import urllib.error

        try:
            yield
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:  # after connecting: reset, timed out, ...
            raise self._unreachable(exc) from None

    def _http_error(self, exc: HTTPError) -> JobsCliError:
        status = exc.code
        try:
            message = str(json.loads(exc.read())["error"]["message"])
        except (ValueError, KeyError, TypeError, OSError):  # not altlas's error shape: a proxy, say
            message = f"{exc.reason}"
        finally:
            exc.close()
        message = " ".join(message.split()) or "no message"
        if status == 401 and not self.api_key:
            message += " (give --api-key or set ALTLAS_API_KEY)"
        transient = status == 429 or status >= 500
        return JobsCliError(
            f"{message} (HTTP {status})", EXIT_USAGE if status < 500 else EXIT_FAILED, transient=transient
        )

    def _unreachable(self, reason: object) -> JobsCliError:
        import socket

        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(reason, socket.gaierror):
            why = f"unknown host ({reason.strerror})"
        elif isinstance(reason, TimeoutError):
            why = f"no answer within {REQUEST_TIMEOUT_S:g} s"
        elif isinstance(reason, OSError) and reason.strerror:
            why = reason.strerror.lower()
        else:
            why = str(reason) or type(reason).__name__
        return JobsCliError(f"cannot reach {self.url}: {why}", transient=True)


def _server(args: argparse.Namespace) -> Server:
    from altlas.settings import Settings

    settings = Settings.from_env(url=args.url or None, api_key=args.api_key or None)
    source, url = ("--url" if args.url else "ALTLAS_URL"), settings.url
    url = (url or DEFAULT_URL).rstrip("/")
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise JobsCliError(f"{source}: bad port in {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobsCliError(f"{source}: give an http:// or https:// address, got {url!r}")
    return Server(url, settings.api_key or None)


def _job_path(job_id: str) -> str:
    if not job_id.strip():
        raise JobsCliError("ID: give a job id")
    return "/v1/jobs/" + urllib.parse.quote(job_id, safe="")


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _note(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"altlas: {message}", file=sys.stderr)


def _submit(server: Server, args: argparse.Namespace) -> int:
    _check_wait_flags(args, waiting=args.wait)
    body: JsonObject = {"kind": args.kind, "input": _job_input(args)}
    if args.priority is not None:
        body["priority"] = args.priority
    if args.deadline is not None:
        body["deadline"] = _deadline(args.deadline)
    if args.idempotency_key is not None:
        body["idempotency_key"] = args.idempotency_key
    status, view = server.call("POST", "/v1/jobs", body)
    if status == 200:  # 202 is a new job; 200 the one this idempotency key named before
        _note(args, f"idempotency key {args.idempotency_key!r} names job {view['id']}, submitted before")
    if not args.wait:
        print(view["id"] if args.quiet else _dumps(view))
        return 0
    _note(args, f"job {view['id']} ({view['kind']}) submitted; waiting")  # the id, should the wait end early
    return _wait_for_result(server, str(view["id"]), args)


def _check_wait_flags(args: argparse.Namespace, *, waiting: bool) -> None:
    if not waiting:
        for flag, value in (("--timeout", args.timeout), ("--output", args.output)):
            if value is not None:
                raise JobsCliError(f"{flag} goes with --wait")
    if args.timeout is not None and not args.timeout > 0:
        raise JobsCliError("--timeout must be more than 0 seconds")


def _job_input(args: argparse.Namespace) -> JsonObject:
    inline = None if args.input_json is None else _json_object(args.input_json, "--json")
    field = LINE_FIELDS.get(args.kind)
    if args.input is None:
        if inline is None:
            raise JobsCliError("give the job's input: --input FILE or --json JSON")
        return inline
    if field is None:
        if inline is not None:
            raise JobsCliError(f"a {args.kind} job takes --input FILE or --json JSON, not both")
        return _json_object(_read_text(args.input), f"--input {args.input}")
    lines = [line for line in _read_text(args.input).splitlines() if line.strip()]
    if not lines:
        raise JobsCliError(f"--input: {args.input} has no lines (blank lines are skipped)")
    if inline is not None and field in inline:
        raise JobsCliError(f"--json: leave out {field!r}; with --input, the file's lines are the {field}")
    return {**(inline or {}), field: lines}


def _json_object(text: str, source: str) -> JsonObject:
    try:
        value = json.loads(text)
    except ValueError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise JobsCliError(f"{source}: not valid JSON ({reason}{where})") from None
    if not isinstance(value, dict):
        raise JobsCliError(f"{source}: give a JSON object (the job's input), not {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _read_text(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is no part of line one
    except OSError as exc:
        raise JobsCliError(f"--input: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise JobsCliError(f"--input: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _deadline(text: str) -> float | str:
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise JobsCliError(f"--deadline: not a time: {text!r}")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise JobsCliError(f"--deadline: give an ISO 8601 date-time or unix seconds, got {text!r}") from None
    # Without a zone the user means their own clock; the server would read it in its own zone.
    return (when if when.tzinfo is not None else when.astimezone()).isoformat()


def _status(server: Server, args: argparse.Namespace) -> int:
    print(_dumps(server.call("GET", _job_path(args.id))[1]))
    return 0


def _wait(server: Server, args: argparse.Namespace) -> int:
    _check_wait_flags(args, waiting=True)
    return _wait_for_result(server, args.id, args)


def _cancel(server: Server, args: argparse.Namespace) -> int:
    view = server.call("DELETE", _job_path(args.id))[1]
    status = view["status"]
    if status == "running":
        _note(args, f"cancel requested: job {view['id']} stops at its next batch")
    elif status != "cancelled":
        _note(args, f"job {view['id']} already {status}; nothing to cancel")
    print(_dumps(view))
    return 0


def _list(server: Server, args: argparse.Namespace) -> int:
    query = {"status": args.status, "kind": args.kind, "limit": args.limit}
    while True:
        params = urllib.parse.urlencode({key: value for key, value in query.items() if value is not None})
        page = server.call("GET", "/v1/jobs" + (f"?{params}" if params else ""))[1]
        for job in page["data"]:
            print(_job_line(job))
        if not args.all or not page.get("next"):
            return 0
        query["after"] = page["next"]


def _job_line(job: JsonObject) -> str:
    progress = job.get("progress")
    done = f"{progress['done']}/{progress['total']}" if progress else "-"
    created = datetime.fromtimestamp(job["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
    return f"{job['id']}  {job['kind']:<12}  {job['status']:<9}  {done:>13}  {created}"


def _wait_for_result(server: Server, job_id: str, args: argparse.Namespace) -> int:
    path = _job_path(job_id)
    bar = _ProgressBar(enabled=not args.no_progress and sys.stderr.isatty())
    try:
        view = poll(lambda: server.call("GET", path)[1], timeout_s=args.timeout, on_view=bar.show)
    except KeyboardInterrupt:
        bar.close()  # first, so the note starts a line of its own
        print(
            f"altlas: stopped waiting; job {job_id} goes on ('altlas jobs cancel {job_id}' stops it)",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()
    status = view["status"]
    if status not in FINISHED:
        print(
            f"altlas: job {job_id} still {status} after {args.timeout:g} s; "
            f"it goes on ('altlas jobs wait {job_id}' waits again)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if status != "succeeded":
        error = view.get("error") or {}
        reason = f": {' '.join(str(error['message']).split())}" if error.get("message") else ""
        print(f"altlas: job {job_id} {status}{reason}", file=sys.stderr)
        return EXIT_FAILED
    if args.output is not None:
        _download(server, f"{path}/result", args.output)
        return 0
    print(_dumps(view.get("result")))
    if view["kind"] in RESULT_FILES:
        _note(args, f"the {RESULT_FILES[view['kind']]} are in a file: add --output FILE to fetch it")
    return 0


def poll(
    fetch: Callable[[], JsonObject],
    *,
    timeout_s: float | None,
    on_view: Callable[[JsonObject], None] = lambda view: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JsonObject:
    """Fetch a job's view until it finishes or timeout_s passes; returns the last view.

    Polls quickly at first (most jobs are short), backing off to once a second. Transient failures
    (unreachable, 429, 5xx) after the first answer are ridden out for TRANSIENT_GRACE_S: a restarted
    server runs the job again. The first fetch must succeed, so a wrong URL fails at once.
    """
    start = clock()
    delay = FIRST_POLL_S
    view: JsonObject | None = None
    trouble_since: float | None = None
    while True:
        try:
            fresh = fetch()
        except JobsCliError as exc:
            now = clock()
            if view is None or not exc.transient:
                raise
            if trouble_since is None:
                trouble_since = now
                print(f"altlas: {exc}; trying again for up to {TRANSIENT_GRACE_S:g} s", file=sys.stderr)
            elif now - trouble_since > TRANSIENT_GRACE_S:
                raise
        else:
            view, trouble_since = fresh, None
            on_view(view)
            if view["status"] in FINISHED:
                return view
        if timeout_s is not None:
            left = start + timeout_s - clock()
            if left <= 0:
                return view
            sleep(min(delay, left))
        else:
            sleep(delay)
        delay = min(delay * 1.5, MAX_POLL_S)


class _ProgressBar:
    """A tqdm bar on a terminal's stderr, from the first view that reports progress."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: tqdm[Any] | None = None

    def show(self, view: JsonObject) -> None:
        progress = view.get("progress")
        if not self._enabled or not progress:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=progress["total"], desc=str(view["kind"]), unit="item", file=sys.stderr)
        self._bar.total = progress["total"]
        if progress["done"] >= self._bar.n:
            self._bar.update(progress["done"] - self._bar.n)
        else:  # a job run again after a server restart starts over
            self._bar.n = progress["done"]
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _download(server: Server, path: str, target: Path) -> None:
    """Into target.part first, so an interrupted download never passes for a whole result."""
    partial = target.with_name(target.name + ".part")
    try:
        out = partial.open("wb")
    except OSError as exc:
        raise JobsCliError(f"--output: cannot write {target}: {exc.strerror}") from None
    try:
        with out:
            for chunk in server.chunks(path):
                out.write(chunk)
        partial.replace(target)
    except OSError as exc:
        raise JobsCliError(f"--output: cannot write {target}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
