"""The pipeline and its benchmark against real secured listeners: SASL_SSL (SCRAM-SHA-512,
SCRAM-SHA-256 and PLAIN over TLS from a local CA) and SSL with client certificates
(deploy/kafka/kafka.sh --sasl-ssl-port --ssl-port).

tests/reliability/test_security.py checks statically and with stand-in client classes
that every Kafka client gets the security settings, and runs a worker's whole job over
this listener (no secret in its output); here: refused logins and certificates, and
the benchmark.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from streams import bench_pipeline as bp
from streams.kafka_util import acl_recipe, responder_acl_recipe, topic_names
from streams.recovery import connect_problem
from streams.settings import Settings
from streams.synth import surge_stream
from tests.cli_support import run
from tests.kafka_support import (
    OAUTH_SECRET,
    PROJECT,
    SASL_SSL_OFFSET,
    SecureKafka,
    WorkerFactory,
    committed_equals_end,
)
from tests.malformed import malformed
from tests.oauth_support import LocalIdP
from tests.reliability.support import wait_until
from tests.responders.events import event

pytestmark = pytest.mark.kafka


#: Each way in that a deployment may use: (bootstrap, worker settings) of the listener.
LOGINS: dict[str, Callable[[SecureKafka, LocalIdP], tuple[str, dict[str, str]]]] = {
    "SCRAM-SHA-256": lambda k, _: (
        k.bootstrap,
        k.settings(kafka_sasl_mechanism="SCRAM-SHA-256"),
    ),
    "PLAIN": lambda k, _: (k.bootstrap, k.settings(kafka_sasl_mechanism="PLAIN")),
    "mutual TLS": lambda k, _: (k.ssl_bootstrap, k.mtls_settings()),
    # Tokens from a real token endpoint, signed; the broker checks them against its key set.
    "OAUTHBEARER": lambda k, idp: (k.bootstrap, k.oauth_settings(idp.url, OAUTH_SECRET)),
}


@pytest.mark.parametrize("login", list(LOGINS))
def test_a_worker_does_its_whole_job_with_each_login(
    kafka_secure: SecureKafka, oauth_idp: LocalIdP, tmp_path: Path, login: str
) -> None:
    # Every client of the worker (kafka-python for the topics, aiokafka for ingest and
    # recovery, Faust for detect and events) authenticates the same way.
    bootstrap, settings = LOGINS[login](kafka_secure, oauth_idp)
    client = Settings(kafka_bootstrap=bootstrap, **settings).kafka_python_config()
    whole_job(WorkerFactory(bootstrap, tmp_path, settings=settings, client=client))


def whole_job(workers: WorkerFactory) -> None:
    """A worker of ``workers`` counts a short surge stream, publishes every scored
    mention, dead-letters every malformed record and opens the surge's crisis."""
    mentions = surge_stream(["acme", "globex", "initech"], 3_000, surge_brand="initech", seed=5)
    bad = malformed(6)
    try:
        w = workers.start()
        records = [(m["brand"].encode(), orjson.dumps(m)) for m in mentions]
        workers.produce(workers.topic("raw"), records + [(k, v) for k, v, _ in bad])
        assert wait_until(lambda: sum(w.get("/stats")["brands"].values()) >= len(mentions), 120, 1)
        counted = w.get("/stats")["brands"]
        dead = workers.consume(workers.topic("deadletter"), until=len(bad), timeout=60)
        scored = workers.consume(workers.topic("scored"), until=len(mentions), timeout=60)
        events = workers.consume(workers.topic("events"), idle=3, timeout=60)
    finally:
        workers.stop_all()
    assert counted == dict(Counter(m["brand"] for m in mentions))
    assert len(scored) == len(mentions) and len(dead) == len(bad)
    opened = [orjson.loads(e.value) for e in events]
    assert any(e["brand"] == "initech" and e["status"] == "opened" for e in opened), opened


def run_worker(kafka: SecureKafka, tmp: Path, **settings: str) -> tuple[int, str, float]:
    """A worker with these settings over the SASL_SSL listener, to its exit: (code, output, seconds)."""
    return run_worker_at(kafka.bootstrap, tmp, kafka.settings(**settings))


def run_worker_at(bootstrap: str, tmp: Path, settings: dict[str, str]) -> tuple[int, str, float]:
    """A worker with these settings, to its exit: (code, output, seconds)."""
    return run_to_exit(WorkerFactory(bootstrap, tmp, settings=settings), tmp)


def run_to_exit(workers: WorkerFactory, tmp: Path) -> tuple[int, str, float]:
    """A worker of this factory, to its exit: (code, output, seconds)."""
    env = workers.env(data_dir=str(tmp / "w"))
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "streams", "worker"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return p.returncode, p.stderr + p.stdout, time.monotonic() - t0


def test_a_worker_with_a_wrong_password_says_why_and_exits(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    code, out, took = run_worker(kafka_secure, tmp_path, kafka_sasl_password="not-it")
    assert code == 3, out[-2000:]
    assert "SaslAuthenticationFailed" in out and "invalid credentials" in out
    assert "not-it" not in out
    # Refused at once, not after kafka-python's retries ran out (about 30 s).
    assert took < 25, took


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A certificate (and its key) from a CA the broker does not know."""
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}"]
    keys = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(["openssl", *args, *keys], check=True, capture_output=True)
    return cert, key


def test_a_worker_that_does_not_trust_the_certificate_says_why(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    other_ca, _ = self_signed(tmp_path, "not-the-brokers-CA")
    code, out, _ = run_worker(kafka_secure, tmp_path, kafka_ssl_cafile=str(other_ca))
    assert code == 3, out[-2000:]
    assert "CERTIFICATE_VERIFY_FAILED" in out


def test_a_worker_without_the_client_certificate_the_broker_requires_says_so(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    # The broker sends its alert after the handshake: the Kafka clients saw only a
    # closed connection and retried for 30 s before "Unable to bootstrap".
    settings = kafka_secure.mtls_settings(kafka_ssl_certfile="", kafka_ssl_keyfile="")
    code, out, took = run_worker_at(kafka_secure.ssl_bootstrap, tmp_path, settings)
    assert code == 3, out[-2000:]
    assert "requires a client certificate" in out and "CRISISWATCH_KAFKA_SSL_CERTFILE" in out
    assert took < 25, took


def test_a_worker_whose_client_certificate_the_broker_does_not_trust_says_so(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path, "crisiswatch")
    settings = kafka_secure.mtls_settings(kafka_ssl_certfile=str(cert), kafka_ssl_keyfile=str(key))
    code, out, took = run_worker_at(kafka_secure.ssl_bootstrap, tmp_path, settings)
    assert code == 3, out[-2000:]
    assert f"does not trust the client certificate {cert}" in out
    assert took < 25, took


def test_bench_pipeline_phases_run_against_the_secured_listener(
    kafka_secure: SecureKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The benchmark's clients, its workers and the empty Faust agent all reach
    # the broker with the environment's security settings.
    for k, v in kafka_secure.env().items():
        monkeypatch.setenv(k, v)
    n = 8_000
    with bp.broker() as boot:
        assert boot == kafka_secure.bootstrap
        topic = f"bench-secure-{time.time_ns()}"
        bp.create_topic(boot, topic)
        bp.produce(boot, topic, bp.make_mentions(n, 20, start=time.time() - 600, span=600))
        got = bp.bare(boot, topic, n)
        assert got["rate"] > 0
        relay = bp.relay(boot, topic, n)
        assert relay["rate"] > 0
        empty = bp.run_empty_agent(boot, topic, n, tmp_path, timeout=120)
        assert empty["records"] > 0, (tmp_path / "empty-agent.log").read_text()[-3000:]
        # A worker of the benchmark (measure_pipeline's, without the timing, which
        # needs more mentions than a test should send).
        run = bp.Run("secure", boot, tmp_path, topic)
        run.start(1)
        try:
            done = wait_until(
                lambda: run.total("detect.in") + run.total("detect.replayed") >= n, 120
            )
            assert done, run.workers[0].counters()
        finally:
            run.stop()


def test_bench_pipeline_names_a_refused_login_at_once(
    kafka_secure: SecureKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in kafka_secure.env(kafka_sasl_password="not-it").items():
        monkeypatch.setenv(k, v)
    with pytest.raises(bp.ConfigError, match="SaslAuthenticationFailed"), bp.broker():
        pass


def test_broker_start_prints_the_settings_that_reach_each_secured_listener(
    kafka_secure: SecureKafka,
) -> None:
    # The broker of kafka_secure is running: `broker start` finds it so, and prints
    # the lines a user pastes. Both sets must reach the broker.
    sasl_port = int(kafka_secure.bootstrap.rsplit(":", 1)[1])
    ssl_port = int(kafka_secure.ssl_bootstrap.rsplit(":", 1)[1])
    state = Path(kafka_secure.cafile).parent.parent.parent
    p = run(
        "broker",
        "start",
        "--port",
        str(sasl_port - SASL_SSL_OFFSET),
        "--sasl-ssl-port",
        str(sasl_port),
        "--ssl-port",
        str(ssl_port),
        KAFKA_HOME_DIR=str(state),
        KAFKA_SCRAM_PASSWORD=kafka_secure.password,
    )
    assert p.returncode == 0, p.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in p.stdout.splitlines()
        if line.startswith("export ")
    )
    # The password is named, not printed.
    assert exports.pop("CRISISWATCH_KAFKA_SASL_PASSWORD") == '"$KAFKA_SCRAM_PASSWORD"'
    assert kafka_secure.password not in p.stdout
    mtls = dict(
        word.split("=", 1)
        for line in p.stdout.splitlines()
        if line.startswith("# mutual TLS")
        for word in line.split()
        if "=" in word
    )
    for env, password in ((exports, kafka_secure.password), (exports | mtls, "")):
        settings = {k.removeprefix("CRISISWATCH_").lower(): v for k, v in env.items()}
        st = Settings(**settings, kafka_sasl_password=password)
        assert connect_problem(st) is None, (st.kafka_bootstrap, st.kafka_security_protocol)
    assert mtls["CRISISWATCH_KAFKA_SECURITY_PROTOCOL"] == "SSL"


def grant(kafka: SecureKafka, recipe: list[tuple[str, str, str, tuple[str, ...]]]) -> None:
    """Allow User:guest these operations (kafka_util.acl_recipe's shape), as a super user."""
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    acls = [
        ACL(
            "User:guest",
            "*",
            ACLOperation[op],
            ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType[rt], name, ACLResourcePatternType[pattern]),
        )
        for rt, name, pattern, ops in recipe
        for op in ops
    ]
    admin = KafkaAdminClient(bootstrap_servers=kafka.admin_bootstrap)
    try:
        res = admin.create_acls(acls)
        assert not res["failed"], res["failed"]
    finally:
        admin.close()


def guest_factory(
    kafka: SecureKafka, tmp: Path, login: dict[str, str] | None = None
) -> tuple[WorkerFactory, Settings]:
    """Workers as "guest" (PLAIN, or the ``login`` settings given), and their settings."""
    workers = WorkerFactory(
        kafka.bootstrap, tmp, settings=login or kafka.guest_settings(), client=kafka.kafka_python()
    )
    # The responders' topic and group of this run only (the defaults are shared names).
    workers.settings = workers.settings | {
        "topic_responder_deadletter": f"t{workers.run}.crisis.events.deadletter",
        "responder_group": f"t{workers.run}-responders",
    }
    env = workers.env()
    st = Settings(
        **{
            k.removeprefix("CRISISWATCH_").lower(): v
            for k, v in env.items()
            if k.startswith("CRISISWATCH_")
        }
    )
    return workers, st


def public_topics(kafka: SecureKafka, st: Settings, *more: str) -> None:
    """The worker's public topics (and ``more``), made by a super user."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.admin_bootstrap)
    try:
        admin.create_topics([NewTopic(t, 4, 1) for t in [*topic_names(st), *more]])
    finally:
        admin.close()


def refused(workers: WorkerFactory, tmp: Path, password: str) -> str:
    """A worker of ``workers`` stopped at start for its ACLs: its error line."""
    code, out, took = run_to_exit(workers, tmp)
    assert code == 5, out[-2000:]
    assert "Kafka ACLs" in out and password not in out
    assert took < 25, took
    return next(x for x in out.splitlines() if x.startswith("crisiswatch: error:"))


def lacked(line: str) -> list[str]:
    """The permissions an access-check error line names."""
    return line.split(" lacks ", 1)[1].split(". Grant them")[0].split("; ")


def test_a_worker_whose_user_may_do_nothing_says_what_to_do(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    workers, st = guest_factory(kafka_secure, tmp_path)
    line = refused(workers, tmp_path, kafka_secure.password)
    assert f"the user 'guest' (PLAIN) may not see or create the topics {st.topic_raw}" in line


def test_a_worker_names_every_permission_its_user_lacks(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    # Without the check a worker that may not join its groups waited forever and
    # logged nothing; one that may not write a topic failed later, topic by topic.
    workers, st = guest_factory(kafka_secure, tmp_path)
    public_topics(kafka_secure, st)
    recipe = [r for r in acl_recipe(st) if r[0] != "GROUP" and r[1] != st.topic_events]
    grant(kafka_secure, [*recipe, ("TOPIC", st.topic_events, "LITERAL", ("DESCRIBE",))])
    line = refused(workers, tmp_path, kafka_secure.password)
    lacks = lacked(line)
    assert sorted(lacks) == sorted(
        [
            f"WRITE on topic {st.topic_events}",
            f"READ on group {st.app_id}",
            f"READ on group {st.app_id}-ingest",
        ]
    ), line


def test_a_worker_with_the_documented_acls_does_its_whole_job(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    workers, st = guest_factory(kafka_secure, tmp_path)
    public_topics(kafka_secure, st)
    grant(kafka_secure, acl_recipe(st))
    whole_job(workers)


def test_responders_name_every_permission_their_user_lacks(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    workers, st = guest_factory(kafka_secure, tmp_path)
    public_topics(kafka_secure, st)  # crisis.events exists; guest may not even see it
    env = {k: v for k, v in workers.env(web_port="0").items() if k.startswith("CRISISWATCH_")}
    p = run("respond", "--sink", "stdout", "--no-metrics", "--timeout", "20", **env)
    assert p.returncode == 5, p.stderr[-2000:]
    line = next(x for x in p.stderr.splitlines() if x.startswith("crisiswatch: error:"))
    lacks = lacked(line)
    assert f"READ on topic {st.topic_events}" in lacks, line
    assert f"READ on group {st.responder_group}" in lacks, line
    assert kafka_secure.password not in p.stderr + p.stdout


@pytest.mark.parametrize("login", ["PLAIN", "OAUTHBEARER"])
def test_responders_with_the_documented_acls_do_their_whole_job(
    kafka_secure: SecureKafka, oauth_idp: LocalIdP, tmp_path: Path, login: str
) -> None:
    # Exactly responder_acl_recipe (docs/operations.md, "Kafka ACLs"): every valid event
    # delivered, every invalid record dead-lettered with its reason, every offset committed.
    # OAUTHBEARER: the client "guest", whose tokens' subject is the principal User:guest.
    oauth = kafka_secure.oauth_settings(oauth_idp.url, OAUTH_SECRET, kafka_sasl_username="guest")
    workers, st = guest_factory(kafka_secure, tmp_path, oauth if login == "OAUTHBEARER" else None)
    public_topics(kafka_secure, st, st.topic_responder_deadletter)
    grant(kafka_secure, responder_acl_recipe(st))
    good = [orjson.dumps(event(n=i, brand=f"brand{i % 3}")) for i in range(6)]
    bad = [b"not json", orjson.dumps({"schema_version": 1, "brand": "acme"})]
    admin = WorkerFactory(kafka_secure.bootstrap, tmp_path, client=kafka_secure.kafka_python())
    admin.produce(st.topic_events, [(b"k", v) for v in good + bad])
    out = tmp_path / "delivered.ndjson"
    env = {k: v for k, v in workers.env(web_port="0").items() if k.startswith("CRISISWATCH_")}
    p = run(
        "respond",
        "--sink",
        f"file:{out}",
        "--from-beginning",
        "--max-events",
        str(len(good) + len(bad)),
        "--timeout",
        "60",
        "--no-metrics",
        **env,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert kafka_secure.password not in p.stderr + p.stdout
    delivered = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    want = sorted(orjson.loads(v)["crisis_id"] for v in good)
    assert sorted(d["event"]["crisis_id"] for d in delivered) == want
    dead = admin.consume(st.topic_responder_deadletter, until=len(bad), timeout=30)
    assert sorted(d.value for d in dead) == sorted(bad)
    reasons = [dict(d.headers)["crisiswatch.error"].decode() for d in dead]
    assert all(r.startswith("invalid event: ") for r in reasons), reasons
    kp = kafka_secure.kafka_python()
    assert committed_equals_end(kafka_secure.bootstrap, st.responder_group, st.topic_events, **kp)


def test_a_worker_whose_oauth_client_is_refused_says_why_and_exits(
    kafka_secure: SecureKafka, oauth_idp: LocalIdP, tmp_path: Path
) -> None:
    settings = kafka_secure.oauth_settings(oauth_idp.url, "not-the-secret")
    code, out, took = run_worker_at(kafka_secure.bootstrap, tmp_path, settings)
    assert code == 3, out[-2000:]
    assert f"the OAuth token endpoint {oauth_idp.url} refused the client 'crisiswatch'" in out
    assert "HTTP 401" in out and "not-the-secret" not in out and OAUTH_SECRET not in out
    assert took < 20, took


def test_a_worker_whose_token_the_broker_refuses_says_so_at_once(
    kafka_secure: SecureKafka, tmp_path: Path
) -> None:
    # A token from another issuer's key: Kafka 4.1's default validator would take it
    # (kafka.sh sets BrokerJwtValidator), and aiokafka went on as if logged in and
    # found no brokers (streams.oauth._OAuthAuthenticator answers the refusal).
    other = tmp_path / "other.key"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-out", str(other)],
        check=True,
        capture_output=True,
    )
    with LocalIdP(other, {kafka_secure.username: OAUTH_SECRET}) as forger:
        settings = kafka_secure.oauth_settings(forger.url, OAUTH_SECRET)
        code, out, took = run_worker_at(kafka_secure.bootstrap, tmp_path, settings)
        assert forger.issued, "the worker never asked for a token"
    assert code == 3, out[-2000:]
    assert 'SaslAuthenticationFailed: {"status":"invalid_token"}' in out, out[-2000:]
    assert OAUTH_SECRET not in out
    assert took < 20, took


def test_an_oauth_client_is_held_to_the_acls_of_its_tokens_subject(
    kafka_secure: SecureKafka, oauth_idp: LocalIdP, tmp_path: Path
) -> None:
    # The token's sub ("guest") is the principal: not a super user, no ACLs.
    settings = kafka_secure.oauth_settings(oauth_idp.url, OAUTH_SECRET, kafka_sasl_username="guest")
    workers = WorkerFactory(
        kafka_secure.bootstrap, tmp_path, settings=settings, client=kafka_secure.kafka_python()
    )
    line = refused(workers, tmp_path, OAUTH_SECRET)
    assert "the OAuth client 'guest' (OAUTHBEARER: the principal is its token's subject)" in line
    assert ("guest", "") in oauth_idp.issued
