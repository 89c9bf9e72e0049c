"""wait_for: answers, time limits, clients that leave, cancelled callers, answers in bursts."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

import pytest

from altlas.errors import TimedOutError
from altlas.scheduling.waiting import ClientGone, wait_for


class Client:
    """An ASGI receive whose body was read: it blocks until the client leaves."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


def finish_later(future: Future[int], value: int, delay_s: float = 0.01) -> None:
    threading.Timer(delay_s, future.set_result, (value,)).start()


def test_the_answer_arrives_from_a_worker_thread() -> None:
    async def main() -> int:
        future: Future[int] = Future()
        finish_later(future, 7)
        return await wait_for(future, 5.0, Client().receive)

    assert asyncio.run(main()) == 7


def test_an_answer_that_is_already_there_and_no_time_limit() -> None:
    async def main() -> int:
        future: Future[int] = Future()
        future.set_result(3)
        return await wait_for(future, 0)

    assert asyncio.run(main()) == 3


def test_the_futures_error_is_raised() -> None:
    async def main() -> None:
        future: Future[int] = Future()
        threading.Timer(0.01, future.set_exception, (ValueError("bad batch"),)).start()
        await wait_for(future, 5.0)

    with pytest.raises(ValueError, match="bad batch"):
        asyncio.run(main())


def test_time_out_cancels_the_future_and_names_the_limit() -> None:
    future: Future[int] = Future()

    async def main() -> None:
        await wait_for(future, 0.05, Client().receive, "embedding 2 texts")

    with pytest.raises(TimedOutError, match=r"embedding 2 texts took longer than the 0\.05 s limit"):
        asyncio.run(main())
    assert future.cancelled()  # a batch gathered later skips it


def test_a_client_that_leaves_cancels_its_future() -> None:
    future: Future[int] = Future()

    async def main() -> None:
        client = Client()
        asyncio.get_running_loop().call_later(0.02, client.gone.set)
        await wait_for(future, 5.0, client.receive)

    with pytest.raises(ClientGone):
        asyncio.run(main())
    assert future.cancelled()


def test_a_cancelled_caller_cancels_its_future() -> None:
    future: Future[int] = Future()

    async def main() -> None:
        task = asyncio.ensure_future(wait_for(future, 5.0, Client().receive))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert future.cancelled()


def test_a_running_item_is_not_cancelled_but_its_late_answer_is_dropped() -> None:
    future: Future[int] = Future()
    assert future.set_running_or_notify_cancel()  # gathered into a batch already

    async def main() -> None:
        with pytest.raises(TimedOutError):
            await wait_for(future, 0.02)
        future.set_result(1)  # the batch ends after its caller gave up: nobody is woken
        await asyncio.sleep(0.02)

    asyncio.run(main())
    assert future.result() == 1


def test_many_answers_finished_together_reach_their_own_callers() -> None:
    futures: list[Future[int]] = [Future() for _ in range(500)]

    def runner() -> None:  # one batch: every result set in a row on this thread
        for i, future in enumerate(futures):
            future.set_result(i)

    async def main() -> list[int]:
        waits = [asyncio.ensure_future(wait_for(f, 5.0, Client().receive)) for f in futures]
        await asyncio.sleep(0)
        threading.Thread(target=runner).start()
        return list(await asyncio.gather(*waits))

    assert asyncio.run(main()) == list(range(500))


def test_waiting_on_two_event_loops_one_after_the_other() -> None:
    for value in (1, 2):  # a loop's inbox does not outlive it, and a new loop gets its own

        async def main(value: int = value) -> int:
            future: Future[int] = Future()
            finish_later(future, value)
            return await wait_for(future, 5.0)

        assert asyncio.run(main()) == value
