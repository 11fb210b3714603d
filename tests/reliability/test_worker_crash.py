"""Worker SIGKILLed at random points during a replay, restarted: counts exact, events consistent."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter

import orjson
import pytest

from streams.backtest import Backtest
from streams.settings import Settings
from streams.synth import QUICK_SETTINGS, surge_stream
from tests.kafka_support import WorkerFactory

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.ci]

BRANDS = [f"brand{i:02d}" for i in range(20)]


def wait_counts(factory: WorkerFactory, want: Counter[str], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    got: dict[str, int] = {}
    while time.monotonic() < deadline:
        w = factory.workers[-1]
        try:
            got = w.get("/stats")["brands"]
        except OSError:
            got = {}
        if got == dict(want):
            return got
        time.sleep(1)
    return got


def dedupe(events: list[dict]) -> list[dict]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for e in events:
        k = (e["crisis_id"], e["status"], e["detected_at"])
        if k not in seen:
            seen.add(k)
            out.append(e)
    return out


def test_sigkill_during_replay_loses_nothing(workers: WorkerFactory) -> None:
    n = 200_000
    mentions = surge_stream(
        BRANDS, n, surge_brand="brand07", seed=21, duration_s=24 * 3600, surge_len_s=3600
    )
    values = [orjson.dumps(m) for m in mentions]
    want = Counter(m["brand"] for m in mentions)
    settings_env = {"checkpoint_seconds": "2"}
    workers.start(**settings_env)

    # Produce in the background while the worker is killed at random moments.
    producer = threading.Thread(
        target=workers.produce,
        args=(
            workers.topic("raw"),
            [(v[v.index(b'"brand":"') + 9 :].split(b'"')[0], v) for v in values],
        ),
    )
    producer.start()
    rng = random.Random(4)
    kills = 0
    while kills < 3:
        time.sleep(rng.uniform(3, 9))
        workers.workers[-1].stop(signal.SIGKILL)
        kills += 1
        workers.start(**settings_env)
    producer.join()

    got = wait_counts(workers, want, timeout=240)
    lost = sum(want.values()) - sum(got.values())
    print(f"sent {n} records, {kills} SIGKILLs, lost {lost}, counted {sum(got.values())}")
    print({b: (want[b], got.get(b)) for b in want if want[b] != got.get(b)})
    assert kills >= 2
    assert got == dict(want)

    # Events: after dropping exact re-emissions, the stream's events are the backtest's.
    time.sleep(10)  # idle flush of the last buckets
    events = [
        orjson.loads(m.value) for m in workers.consume(workers.topic("events"), idle=6, timeout=90)
    ]
    s = Settings(**{**QUICK_SETTINGS, "partitions": "4"})  # type: ignore[arg-type]
    bt = Backtest(s, record_series=False).run(values)
    key = lambda e: (e["brand"], e["detected_at"], e["status"])  # noqa: E731
    assert sorted(dedupe(events), key=key) == sorted(bt.events, key=key)
    for cid in {e["crisis_id"] for e in events}:
        statuses = [e["status"] for e in dedupe(events) if e["crisis_id"] == cid]
        assert statuses[0] == "opened" and statuses.count("opened") == 1
        assert "resolved" not in statuses[:-1]
