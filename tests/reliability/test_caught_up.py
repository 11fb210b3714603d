"""The idle flush's caught-up rule for raw partitions (``IngestService.processed``), without a broker.

Buckets close by wall clock only when the broker confirms that the ingest
group has processed every raw record. These cases pin down what counts as a
confirmation: the broker's own answers, never cached marks, and any doubt
(an error, no answer in time, a batch still in flight here) is a "no".
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from streams.fastpath import IngestService
from streams.settings import Settings

pytestmark = [pytest.mark.reliability, pytest.mark.ci]

RAW = "mentions.raw"


class FakeConsumer:
    """The three calls ``processed`` makes, answered from dicts (or failing, or hanging)."""

    def __init__(
        self,
        ends: dict[int, int],
        committed: dict[int, int | None],
        assigned: Iterable[int] = (),
        fail: BaseException | None = None,
        hang: bool = False,
    ) -> None:
        self.ends = ends
        self.commits = committed
        self.assigned = {TopicPartition(RAW, p) for p in assigned}
        self.fail = fail
        self.hang = hang
        self.calls = 0

    async def _answer(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail is not None:
            raise self.fail

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        await self._answer()
        return {tp: self.ends[tp.partition] for tp in tps}

    async def committed(self, tp: TopicPartition) -> int | None:
        await self._answer()
        return self.commits.get(tp.partition)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int:  # cached marks must not be consulted
        raise AssertionError("processed() must ask the broker, not the cached highwater")


def service(consumer: Any, inflight: bool = False) -> IngestService:
    svc = IngestService(Settings(topic_raw=RAW), ingestor=None, counters={}, on_dead=lambda d: None)  # type: ignore[arg-type]
    svc.consumer = consumer
    if inflight:
        loop = asyncio.get_running_loop()
        svc._inflight = loop.create_task(asyncio.sleep(3600))
    return svc


def run(
    consumer: Any, partitions: list[int], *, inflight: bool = False, timeout: float = 1.0
) -> set[int]:
    async def main() -> set[int]:
        svc = service(consumer, inflight)
        try:
            return await svc.processed(partitions, timeout)
        finally:
            if svc._inflight is not None:
                svc._inflight.cancel()

    return asyncio.run(main())


def test_committed_at_the_end_is_processed_whoever_owns_the_partition() -> None:
    # Partition 1 is another worker's (not assigned here): its group commit counts the same.
    cons = FakeConsumer(ends={0: 10, 1: 7, 2: 5}, committed={0: 10, 1: 7, 2: 4}, assigned={0})
    assert run(cons, [0, 1, 2]) == {0, 1}


def test_never_committed_is_processed_only_when_empty() -> None:
    cons = FakeConsumer(ends={0: 0, 1: 3}, committed={})
    assert run(cons, [0, 1]) == {0}


@pytest.mark.parametrize("fail", [KafkaConnectionError("broker down"), OSError("refused")])
def test_an_error_is_not_processed(fail: BaseException) -> None:
    cons = FakeConsumer(ends={0: 10}, committed={0: 10}, fail=fail)
    assert run(cons, [0]) == set()


def test_no_answer_in_time_is_not_processed() -> None:
    cons = FakeConsumer(ends={0: 10}, committed={0: 10}, hang=True)
    assert run(cons, [0], timeout=0.2) == set()


def test_a_batch_in_flight_here_holds_back_only_this_workers_partitions() -> None:
    cons = FakeConsumer(ends={0: 10, 1: 10}, committed={0: 10, 1: 10}, assigned={0})
    assert run(cons, [0, 1], inflight=True) == {1}


def test_not_started_is_not_processed() -> None:
    assert run(None, [0]) == set()
