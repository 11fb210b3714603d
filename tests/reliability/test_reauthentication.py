"""The broker ends SASL sessions (``connections.max.reauth.ms``), as OAuth deployments
often configure it so that an expired token cannot keep a connection open.

aiokafka does not re-authenticate (KIP-368), so the broker closes each of the
worker's connections when its session ends, and the clients log in again with
the process's cached token. A worker logged in with OAUTHBEARER must count
every mention and publish every scored one through those closes. A private
broker (own state folder, free ports) with 3 s sessions; the worker runs about
18 s of trickled input.

Not marked ``ci``: it runs with ``scripts/reliability.sh``, not in the README
test command (about 40 s, which kept that command over its 15-minute guide
on a slow hour); the OAUTHBEARER login itself is tested there, in
tests/integration/test_secured_broker.py.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.settings import Settings
from streams.synth import surge_stream
from tests.kafka_support import (
    OAUTH_SECRET,
    SASL_SSL_OFFSET,
    SSL_OFFSET,
    SecureKafka,
    WorkerFactory,
)
from tests.oauth_support import LocalIdP
from tests.reliability.support import LocalKafka, summary, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.reliability]

SESSION_MS = 3_000
N = 2_700
CHUNKS = 9


@pytest.mark.timeout(300)
def test_a_worker_carries_on_when_the_broker_ends_its_sessions(tmp_path: Path) -> None:
    kafka = LocalKafka(
        tmp_path / "kafka",
        sasl_ssl=True,
        extra_properties=f"connections.max.reauth.ms={SESSION_MS}",
    )
    kafka.start()
    try:
        tls = kafka.home / "kafka-single" / "tls"
        secure = SecureKafka.local(
            kafka.port + SASL_SSL_OFFSET, kafka.port + SSL_OFFSET, tls, "crisiswatch-local"
        )
        with LocalIdP(secure.oauth_key, {secure.username: OAUTH_SECRET}) as idp:
            settings = secure.oauth_settings(idp.url, OAUTH_SECRET)
            client = Settings(kafka_bootstrap=secure.bootstrap, **settings).kafka_python_config()
            workers = WorkerFactory(secure.bootstrap, tmp_path, settings=settings, client=client)
            mentions = surge_stream(["acme", "globex", "initech"], N, surge_brand="initech", seed=5)
            step = N // CHUNKS
            try:
                w = workers.start()
                t0 = time.monotonic()
                for i in range(CHUNKS):  # in time order, so nothing arrives late
                    chunk = mentions[i * step : (i + 1) * step]
                    workers.produce(
                        workers.topic("raw"),
                        [(m["brand"].encode(), orjson.dumps(m)) for m in chunk],
                    )
                    time.sleep(2)
                assert wait_until(lambda: sum(w.get("/stats")["brands"].values()) >= N, 60, 1), (
                    w.log_text()[-3000:]
                )
                ran = time.monotonic() - t0
                counted = w.get("/stats")["brands"]
                scored = workers.consume(workers.topic("scored"), until=N, timeout=60)
                assert w.alive()
            finally:
                workers.stop_all()
        log = w.log_text()
    finally:
        kafka.stop()
    # The fault happened: the broker closed the worker's connections again and again.
    closes = log.count(f"Connection at {secure.bootstrap} closed")
    tokens = len(idp.issued)
    summary("reauth", sent=N, counted=sum(counted.values()), closes=closes, seconds=round(ran))
    assert tokens <= 3, tokens  # one per process (this one, the worker), not one per login
    assert closes >= 3, (closes, ran, log[-3000:])
    assert ran > 4 * SESSION_MS / 1000
    assert counted == dict(Counter(m["brand"] for m in mentions))
    assert len({orjson.loads(r.value)["id"] for r in scored}) == N
