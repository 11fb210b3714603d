"""One settings object, read once at the entry point and passed down.

Values come from ``CRISISWATCH_*`` environment variables (and optionally an
env file named by ``CRISISWATCH_ENV_FILE``). The core never reads the
environment itself: it receives a frozen :class:`Settings`.

>>> s = Settings(kafka_bootstrap="127.0.0.1:9092")
>>> s.topic_raw
'mentions.raw'
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRISISWATCH_", frozen=True, extra="ignore")

    # Kafka connection. Empty bootstrap means "no Kafka configured": the demo
    # then starts the project's local broker.
    kafka_bootstrap: str = Field(default="", description="host:port[,host:port...]")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = (
        "PLAIN"
    )
    # For OAUTHBEARER: the client id and its secret (streams/oauth.py).
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = Field(default="", repr=False)
    # OAUTHBEARER: the identity provider's token endpoint (client-credentials grant), and scope.
    kafka_sasl_oauth_token_url: str = ""
    kafka_sasl_oauth_scope: str = ""
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""

    # Topics and their partition counts (created on worker start).
    topic_raw: str = "mentions.raw"
    topic_scored: str = "mentions.scored"
    topic_deadletter: str = "mentions.deadletter"
    topic_events: str = "crisis.events"
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)

    # Faust worker.
    app_id: str = "crisiswatch"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    data_dir: str = ".cache/worker"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "json": one JSON object per line (for log shippers); secrets are redacted in both.
    log_format: Literal["text", "json"] = "text"

    # Metrics (/metrics on the web port). Brand labels are opt-in and capped:
    # every brand is a series in Prometheus.
    metrics_brand_labels: bool = False
    metrics_brand_limit: int = Field(default=200, ge=1, le=10_000)
    # Faust's own Prometheus sensor (rebalances, commit and send latency) as
    # crisiswatch_faust_*; it adds a little per-event overhead.
    metrics_faust_sensor: bool = False
    # How often lag and state gauges are refreshed.
    metrics_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    # Hand the C heap's free pages back to the OS this often (glibc's
    # malloc_trim, streams/memory.py); 0 turns it off.
    malloc_trim_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Blocks of this many bytes or more are mmapped and unmapped when freed,
    # with glibc's adaptive threshold off (streams/memory.py fix_mmap_threshold;
    # RSS crept without it at 32,000/s, docs/reliability.md problem 15; with
    # the trim threshold below it costs about 3% of throughput); 0 keeps
    # glibc's adaptive default.
    malloc_mmap_threshold: int = Field(default=4 << 20, ge=0, le=32 * 2**20)
    # Up to this many free bytes stay at the top of the heap between batches
    # (streams/memory.py fix_trim_threshold): with the mmap threshold fixed,
    # glibc's own stays at 128 KiB and the heap shrinks and regrows every
    # batch; the periodic trim still returns them. 0 keeps glibc's value;
    # not set when malloc_mmap_threshold is 0 (it would end the adaptation).
    malloc_trim_threshold: int = Field(default=32 * 2**20, ge=0, le=2**30)
    # Young-generation threshold of Python's garbage collector in a worker
    # (CPython's default is 700; streams/memory.py service_gc); 0 keeps
    # CPython's defaults and freezes nothing.
    gc_young_threshold: int = Field(default=50_000, ge=0, le=10_000_000)
    # A known brand with no new mention for this long counts as silent.
    brand_silence_seconds: float = Field(default=900.0, gt=0)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    batch_seconds: float = Field(default=0.2, gt=0, le=60)
    # Write every scored mention to topic_scored (downstream consumers of
    # mentions.scored). Detection does not need it: off halves the records
    # ingest produces and the broker stores.
    publish_scored: bool = True
    # The detect agent takes the batches of envelopes this worker's ingest
    # wrote for its own partitions as they were encoded, instead of decoding
    # the envelope again (streams/fastpath.py, Handoff). Off: every envelope
    # is decoded.
    envelope_handoff: bool = True

    # Sentiment.
    sentiment_model: str = "linear-v1"
    keep_presented_sentiment: bool = True

    # Event-time buckets and detection.
    bucket_seconds: int = Field(default=300, ge=1, le=86_400)
    allowed_lateness_seconds: int = Field(default=60, ge=0, le=86_400)
    max_future_seconds: int = Field(default=300, ge=0)
    # The stream's watermark (before the allowed lateness is taken off) never
    # runs more than this ahead of wall-clock time (None: uncapped, as the
    # backtest runs over history). At 0, every mention that arrives within the
    # allowed lateness of its created_at is counted, whatever clock another
    # mention came from; a skew S only guarantees that for mentions arriving
    # within (lateness - S), so keep it well below the lateness.
    watermark_future_skew_seconds: float | None = Field(default=0.0, ge=0)
    # The combined crisis detector (volume, negative share, mean sentiment);
    # its score is S / (S + 3) with S the digits of surprise, so 0.6 means
    # about one chance in 30,000 under the brand's own baseline.
    detector: str = "crisis"
    open_threshold: float = Field(default=0.6, gt=0, lt=1)
    close_threshold: float = Field(default=0.45, gt=0, lt=1)
    min_volume: int = Field(default=20, ge=1)
    resolve_after_buckets: int = Field(default=3, ge=1)
    update_every_buckets: int = Field(default=3, ge=1)
    cooldown_buckets: int = Field(default=6, ge=0)
    sustained_after_buckets: int = Field(default=36, ge=1)
    max_open_buckets: int = Field(default=2016, ge=1)
    single_voice_share: float = Field(default=0.2, gt=0, le=1)
    # No crisis opens before a brand has this much history (12 h of 5-minute buckets).
    warmup_buckets: int = Field(default=144, ge=0)
    # A volume-driven crisis also needs this much negative-share evidence.
    volume_negativity_score: float = Field(default=0.5, ge=0, le=1)
    baseline_texts: int = Field(default=24, ge=0, le=1000)
    # A partition with no new records for this long closes its open buckets
    # (processing-time fallback so a quiet feed still reports).
    idle_flush_seconds: float = Field(default=5.0, gt=0)
    # Consumer-group liveness: a crashed worker's partitions move after about
    # this long (Faust's default is 60 s).
    consumer_session_timeout_seconds: float = Field(default=10.0, ge=3, le=300)
    consumer_heartbeat_seconds: float = Field(default=3.0, gt=0, le=60)
    # How often each detect partition writes its state to the checkpoint topic.
    checkpoint_seconds: float = Field(default=5.0, gt=0)
    max_text_bytes: int = Field(default=65_536, ge=1)
    # Duplicate mention ids are dropped while their bucket is open and for this
    # many buckets after it closes (1 hour at the default 5-minute buckets).
    dedupe_buckets: int = Field(default=12, ge=0, le=10_000)
    # ...and at most this many ids of closed buckets per detect partition: the
    # oldest closed buckets' ids go first, so memory and checkpoint size stay
    # bounded at any rate (2,000,000 ids: 16 MB in a checkpoint, 32-64 MB of
    # tables). Open buckets always keep all their ids (exact counts).
    dedupe_max_ids: int = Field(default=2_000_000, ge=0)

    # Responders (`crisiswatch respond`). Secrets are repr=False so they never
    # show up in a logged or printed Settings; URLs that carry a token (Slack's)
    # are secrets too.
    responder_group: str = "crisiswatch-responders"
    topic_responder_deadletter: str = "crisis.events.deadletter"
    # Static group membership (group.instance.id): a restarted responder with
    # the same id takes its partitions back at once instead of waiting out the
    # session timeout. Empty = dynamic membership.
    responder_instance_id: str = ""
    responder_session_timeout_ms: int = Field(default=45_000, ge=6_000, le=1_800_000)
    responder_max_attempts: int = Field(default=5, ge=1, le=50)
    responder_backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    responder_backoff_max_seconds: float = Field(default=30.0, ge=0, le=600)
    responder_http_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Link put into Alertmanager's externalURL/generatorURL and PagerDuty's client_url.
    responder_external_url: str = ""
    webhook_url: str = Field(default="", repr=False)  # paths often carry a token
    webhook_secret: str = Field(default="", repr=False)
    slack_webhook_url: str = Field(default="", repr=False)
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    pagerduty_routing_key: str = Field(default="", repr=False)
    alertmanager_url: str = Field(default="", repr=False)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, v: str) -> str:
        v = v.strip()
        for part in filter(None, v.split(",")):
            host, _, port = part.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {v!r}")
        return v

    @field_validator("kafka_sasl_oauth_token_url")
    @classmethod
    def _token_url(cls, v: str) -> str:
        v = v.strip()
        if v and urllib.parse.urlsplit(v).scheme not in ("http", "https"):
            raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
        return v

    @property
    def oauthbearer(self) -> bool:
        """Whether the Kafka clients log in with OAuth tokens (streams/oauth.py)."""
        return self.kafka_security_protocol.startswith("SASL") and (
            self.kafka_sasl_mechanism == "OAUTHBEARER"
        )

    @model_validator(mode="after")
    def _oauth(self) -> Settings:
        if self.oauthbearer:
            if not self.kafka_sasl_oauth_token_url:
                raise ValueError(
                    "OAUTHBEARER needs CRISISWATCH_KAFKA_SASL_OAUTH_TOKEN_URL (the identity "
                    "provider's token endpoint)"
                )
            if not self.kafka_sasl_username:
                raise ValueError(
                    "OAUTHBEARER needs CRISISWATCH_KAFKA_SASL_USERNAME (the client id)"
                )
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        return [p for p in self.kafka_bootstrap.split(",") if p]

    def kafka_python_config(self) -> dict[str, Any]:
        """Security settings in kafka-python's keyword names."""
        cfg: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.oauthbearer:
            from .oauth import KafkaPythonTokens, credentials

            cfg.update(
                sasl_mechanism="OAUTHBEARER",
                sasl_oauth_token_provider=KafkaPythonTokens(credentials(self)),
            )
        elif self.kafka_security_protocol.startswith("SASL"):
            cfg.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password,
            )
        if self.kafka_security_protocol.endswith("SSL"):
            cfg.update(
                ssl_cafile=self.kafka_ssl_cafile or None,
                ssl_certfile=self.kafka_ssl_certfile or None,
                ssl_keyfile=self.kafka_ssl_keyfile or None,
            )
        return cfg


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError with a readable reason."""
    env_file = os.environ.get("CRISISWATCH_ENV_FILE")
    try:
        if env_file:
            if not os.path.isfile(env_file):
                raise ConfigError(f"CRISISWATCH_ENV_FILE={env_file} does not exist")
            return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            # A check across settings (no loc) names its settings in its own message.
            f"CRISISWATCH_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            if e["loc"]
            else str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
