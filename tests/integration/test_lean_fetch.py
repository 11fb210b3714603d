"""streams.lean_fetch on the real broker: the same records as aiokafka's own path."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from streams.lean_fetch import lean_records

pytestmark = pytest.mark.kafka

N_PLAIN, N_GZIP = 2500, 500


def _produce(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    # Plain batches, then compressed ones: both batch shapes come back.
    for compression, n, base in ((None, N_PLAIN, 0), ("gzip", N_GZIP, N_PLAIN)):
        prod = KafkaProducer(bootstrap_servers=[bootstrap], compression_type=compression)
        for i in range(base, base + n):
            key = None if i % 7 == 0 else f"brand-{i % 5}".encode()
            value = b'{"i":%d}' % i
            if i % 89 == 0:
                value = b""
            elif i % 97 == 1 and key is not None:
                value = None  # a tombstone
            headers = [("h", b"x"), ("n", str(i).encode())] if i % 3 == 0 else []
            prod.send(topic, key=key, value=value, headers=headers, partition=i % 2)
        prod.flush()
        prod.close()


async def _drain(bootstrap: str, topic: str, lean: bool, max_records: int) -> dict[str, Any]:
    cons = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"lean-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await cons.start()
    used = lean_records(cons) if lean else False
    rows: list[tuple[int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]] = []
    kinds: set[type] = set()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(rows) < N_PLAIN + N_GZIP and loop.time() < deadline:
            got = await cons.getmany(timeout_ms=500, max_records=max_records)
            for tp, recs in got.items():
                assert len(recs) <= max_records
                for r in recs:
                    kinds.add(type(r))
                    rows.append((tp.partition, r.offset, r.key, r.value, tuple(r.headers)))
        # Nothing more after everything: positions advanced exactly past the records.
        extra = await cons.getmany(timeout_ms=300)
        assert not any(extra.values())
    finally:
        await cons.stop()
    return {"rows": rows, "kinds": kinds, "used": used}


def test_lean_records_are_aiokafkas_records(kafka_bootstrap: str) -> None:
    topic = f"lean-{uuid.uuid4().hex[:6]}"
    _produce(kafka_bootstrap, topic)
    # A small max_records stops inside fetched batches, so the position kept
    # between getmany calls is exercised too.
    ref = asyncio.run(_drain(kafka_bootstrap, topic, lean=False, max_records=333))
    got = asyncio.run(_drain(kafka_bootstrap, topic, lean=True, max_records=333))
    assert got["used"] is True
    assert ref["kinds"] == {ConsumerRecord}
    assert ConsumerRecord not in got["kinds"]  # the lean path really ran
    assert len(ref["rows"]) == N_PLAIN + N_GZIP
    assert sorted(got["rows"]) == sorted(ref["rows"])
    # Per partition, offsets strictly increase: no record twice, none skipped.
    for p in (0, 1):
        offs = [o for part, o, *_ in got["rows"] if part == p]
        assert offs == sorted(set(offs)) == list(range(len(offs)))


def test_a_consumer_that_is_not_started_keeps_aiokafkas_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def check() -> bool:
        cons = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
        return lean_records(cons)

    with caplog.at_level(logging.WARNING, logger="streams.lean_fetch"):
        assert asyncio.run(check()) is False
    assert "keeps aiokafka's record path" in caplog.text
