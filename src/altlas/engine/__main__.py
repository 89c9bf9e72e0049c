"""One engine process: `python -m altlas.engine --address ipc://RUN/engine-0 --parent PID`.

It owns the models (altlas.orchestrator: the registry under ALTLAS_DATA_DIR, placement, the
batchers) and what is kept beside them (the search collections, the index of stored commands,
the models' metrics: altlas.engine.thread_work.Keeps), and serves them on `address` to API
processes (altlas.engine.core.Engine). Settings
come from the ALTLAS_* variables, as the server's do. It dies with the process that started it
(`--parent`: runtime.process.die_with_parent), and on SIGTERM or SIGINT it stops taking
requests, lets the models finish what they accepted, and exits. Settings or data it cannot start
with (a damaged collection) are told in one line on stderr, and it exits with EXIT_UNUSABLE.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from types import FrameType

from altlas.errors import AltlasError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m altlas.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="the ZeroMQ endpoint to serve on")
    parser.add_argument("--parent", type=int, required=True, help="the pid of the process that started it")
    args = parser.parse_args(argv)

    from altlas.runtime.process import StopFlag, configure_process, die_with_parent

    stop = StopFlag()  # set by a signal handler: no lock (see StopFlag)

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    die_with_parent(args.parent)

    from altlas.engine.core import Engine
    from altlas.engine.supervisor import EXIT_UNUSABLE
    from altlas.engine.thread_work import Keeps
    from altlas.logs import configure_logging
    from altlas.orchestrator.manager import ModelManager
    from altlas.settings import Settings

    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        configure_process(settings)
        manager = ModelManager.from_settings(settings)
        keeps = Keeps.of(settings, manager)  # a damaged collection stops the start here
    except AltlasError as exc:  # the data or settings: starting again would not help
        print(f"altlas: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_UNUSABLE  # the supervisor starts no other: the server stops
    loader = None
    if "orchestrator" in settings.services:  # as in one process: elsewhere models load on first use
        loader = manager.start()  # the models marked load_at_start, in the background
    Engine(manager.loaded, args.address, keeps=keeps).serve(stop)
    if loader is not None:  # a load cut off by the interpreter's exit aborts the process
        loader.join()
    for spec in manager.registry.all():  # what was accepted finishes; then the models go
        if manager.loaded.get(spec.name) is not None:
            with contextlib.suppress(AltlasError):
                manager.unload(spec.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
