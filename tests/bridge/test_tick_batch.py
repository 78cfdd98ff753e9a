"""TickBatch: what is asked in one turn of the event loop is sent in one batch, and each
asker gets its own answer (or its own error)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bridge.store.tick_batch import TickBatch


class Server:
    """A `send` that records its batches and answers each request doubled; a request
    of -1 gets an error of its own, a batch holding 0 fails as a whole."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.answering = asyncio.Event()
        self.answering.set()

    async def send(self, requests: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(requests)
        await self.answering.wait()
        if 0 in requests:
            raise ConnectionError("the server went away")
        return [ValueError(f"refused {n}") if n == -1 else 2 * n for n in requests]


def batch_for(server: Server, most_in_flight: int = 4) -> TickBatch[int, int]:
    return TickBatch(
        server.send,
        asyncio.get_running_loop(),
        most_in_flight=most_in_flight,
        timeout_seconds=1.0,
        timed_out=lambda: TimeoutError("no answer in time"),
    )


def test_requests_asked_in_one_turn_are_sent_together_each_answered_in_its_place() -> None:
    server = Server()

    async def ask() -> list[int]:
        batch = batch_for(server)
        return await asyncio.gather(*(batch.ask(n) for n in (3, 1, 2)))

    assert asyncio.run(ask()) == [6, 2, 4]
    assert server.batches == [[3, 1, 2]]


def test_a_request_asked_after_its_turn_goes_in_a_batch_of_its_own() -> None:
    server = Server()

    async def ask() -> list[int]:
        batch = batch_for(server)
        first = await batch.ask(1)
        return [first, await batch.ask(2)]

    assert asyncio.run(ask()) == [2, 4]
    assert server.batches == [[1], [2]]


def test_an_error_in_place_of_an_answer_is_its_askers_alone() -> None:
    server = Server()

    async def ask() -> list[int | BaseException]:
        batch = batch_for(server)
        return list(await asyncio.gather(batch.ask(-1), batch.ask(5), return_exceptions=True))

    refused, answered = asyncio.run(ask())

    assert isinstance(refused, ValueError) and str(refused) == "refused -1"
    assert answered == 10


def test_an_error_of_the_whole_batch_reaches_every_asker() -> None:
    server = Server()

    async def ask() -> list[int | BaseException]:
        batch = batch_for(server)
        return list(await asyncio.gather(batch.ask(0), batch.ask(5), return_exceptions=True))

    answers = asyncio.run(ask())

    assert [type(answer) for answer in answers] == [ConnectionError, ConnectionError]


def test_an_asker_that_gives_up_leaves_the_others_their_answers() -> None:
    server = Server()

    async def ask() -> tuple[bool, int]:
        batch = batch_for(server)
        server.answering.clear()
        leaving = asyncio.ensure_future(batch.ask(1))
        staying = asyncio.ensure_future(batch.ask(2))
        while not server.batches:  # sent, not answered yet
            await asyncio.sleep(0)
        leaving.cancel()
        server.answering.set()
        answer = await staying
        await batch.close()
        return leaving.cancelled(), answer

    assert asyncio.run(ask()) == (True, 4)


def test_what_is_asked_while_the_batches_in_flight_are_at_their_most_goes_in_the_next_one() -> None:
    server = Server()

    async def ask() -> list[int]:
        batch = batch_for(server, most_in_flight=1)
        server.answering.clear()
        first = asyncio.ensure_future(batch.ask(1))
        while not server.batches:  # on its way
            await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(batch.ask(n)) for n in (2, 3)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # a turn in which the first batch is still out
        assert server.batches == [[1]]
        server.answering.set()
        return await asyncio.gather(first, *waiting)

    assert asyncio.run(ask()) == [2, 4, 6]
    assert server.batches == [[1], [2, 3]]


def test_a_batch_not_answered_in_time_gives_its_askers_the_stores_timeout_error() -> None:
    server = Server()

    async def ask() -> list[int | BaseException]:
        batch = TickBatch(
            server.send,
            asyncio.get_running_loop(),
            most_in_flight=1,
            timeout_seconds=0.05,
            timed_out=lambda: TimeoutError("no answer in time"),
        )
        server.answering.clear()  # never answers
        late = await asyncio.gather(batch.ask(1), batch.ask(2), return_exceptions=True)
        server.answering.set()
        return [*late, await batch.ask(3)]  # the next batch goes out

    *late, answered = asyncio.run(ask())

    assert [str(error) for error in late] == ["no answer in time"] * 2
    assert answered == 6


def test_askers_of_an_expired_batch_and_those_behind_it_are_told_at_once() -> None:
    letting_go = asyncio.Event()

    async def slow_to_let_go(requests: list[int]) -> list[int]:
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            await letting_go.wait()  # a driver that takes its time to give up
            raise
        raise AssertionError("unreachable")

    async def ask() -> tuple[list[str], bool]:
        batch = TickBatch(
            slow_to_let_go,
            asyncio.get_running_loop(),
            most_in_flight=1,
            timeout_seconds=0.05,
            timed_out=lambda: TimeoutError("no answer in time"),
        )
        sent = asyncio.ensure_future(batch.ask(1))
        await asyncio.sleep(0)
        behind = asyncio.ensure_future(batch.ask(2))  # waits: one batch in flight at most
        told = await asyncio.gather(sent, behind, return_exceptions=True)
        still_letting_go = not letting_go.is_set()
        letting_go.set()
        await batch.close()
        return [str(error) for error in told], still_letting_go

    assert asyncio.run(ask()) == (["no answer in time"] * 2, True)


def test_closing_sends_what_waits_and_waits_for_every_answer() -> None:
    server = Server()

    async def ask() -> list[int]:
        batch = batch_for(server, most_in_flight=1)
        server.answering.clear()
        asked = [asyncio.ensure_future(batch.ask(n)) for n in (1, 2)]
        while not server.batches:
            await asyncio.sleep(0)
        later = asyncio.ensure_future(batch.ask(3))  # behind the batch in flight
        await asyncio.sleep(0)
        server.answering.set()
        await batch.close()
        assert all(answer.done() for answer in [*asked, later])
        return [answer.result() for answer in [*asked, later]]

    assert asyncio.run(ask()) == [2, 4, 6]
    assert server.batches == [[1, 2], [3]]
