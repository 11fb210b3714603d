"""Every Prometheus metric crisiswatch exports, in one module.

Names follow Prometheus conventions (``crisiswatch_<noun>_<unit>_total`` for
counters, ``_seconds`` for durations, no unit suffix for plain gauges). Label
values are bounded: a stage, a topic, a partition number, a reason *class*,
a crisis status/kind/severity, a sink type. A brand is never a label unless
the operator opts in with ``CRISISWATCH_METRICS_BRAND_LABELS=true`` (capped
by ``CRISISWATCH_METRICS_BRAND_LIMIT``; further brands share ``brand="other"``).

Metrics live in the default registry: one worker is one process, so there is
exactly one pipeline per registry; tests that build several apps in one
process only ever add to counters, which they read as differences.

``docs/operations.md`` has the reference table; ``tests/ops`` checks that the
dashboards and alert rules only use names defined here.

>>> dead_letter_reason_class("invalid JSON: unexpected character")
'invalid_json'
>>> dead_letter_reason_class("mention.v1: 'brand' is a required property")
'schema'
"""

from __future__ import annotations

import math
import platform
import re
import sys
import time
from collections import Counter as TallyCounter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from . import __version__

# The client's *_created samples double the series count for no dashboard or
# alert we have; the process start time is in process_start_time_seconds.
disable_created_metrics()

if TYPE_CHECKING:
    import numpy as np

    from detectors import BucketStats, Detector

    from .detect import DetectEngine
    from .settings import Settings

#: Content type of ``/metrics``: Prometheus's text format 0.0.4, which every
#: Prometheus (and the Debian 2.x package used in tests) understands.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# -- label value sets --------------------------------------------------------
STAGES = ("ingest", "detect")
#: Dead-letter reasons are free text (they carry offsets, values, schema
#: paths); a metric gets only their class.
REASON_CLASSES = (
    "empty",
    "invalid_json",
    "not_object",
    "schema",
    "too_large",
    "future_timestamp",
    "late",
    "other",
)
#: Outcome of one consumed record, per stage.
RESULTS = {
    "ingest": ("scored", "dead_letter"),
    # Late records are dead letters (reason class "late"), not a result of their own.
    "detect": ("counted", "duplicate", "dead_letter"),
}
STATUSES = ("opened", "escalated", "updated", "resolved")
SEVERITIES = ("low", "medium", "high", "critical")

# Event-time lag spans sub-second (live feeds) to days (replays and backfills).
LAG_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    6 * 3600.0,
    86400.0,
    7 * 86400.0,
)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Scores are anomaly scores in [0, 1]; the interesting part is the tail near 1
# (the default open threshold is 0.9999).
SCORE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 0.99999, 1.0)
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# -- records -----------------------------------------------------------------
RECORDS_CONSUMED = Counter(
    "crisiswatch_records_consumed_total",
    "Records read from Kafka by a stage.",
    ["stage", "topic"],
)
RECORDS_PROCESSED = Counter(
    "crisiswatch_records_processed_total",
    "Records a stage finished with, by result (ingest: scored, dead_letter; "
    "detect: counted, duplicate, dead_letter).",
    ["stage", "result"],
)
RECORDS_PRODUCED = Counter(
    "crisiswatch_records_produced_total",
    "Records written to Kafka, by topic.",
    ["topic"],
)
DEAD_LETTERS = Counter(
    "crisiswatch_dead_letters_total",
    "Records sent to the dead-letter topic, by stage and reason class.",
    ["stage", "reason"],
)
CHECKPOINT_FAILURES = Counter(
    "crisiswatch_checkpoint_failures_total",
    "Detect checkpoints not written (too large, or refused by the broker); a restore then "
    "replays from the previous one.",
    ["reason"],
)
HEAP_BYTES = Gauge(
    "crisiswatch_heap_bytes",
    "The C heap (glibc mallinfo2): in_use, free (held, trimmable), arena (from the OS), "
    "mmapped (large blocks).",
    ["kind"],
)
HEAP_TRIMS = Counter(
    "crisiswatch_heap_trims_total",
    "malloc_trim calls that returned free heap pages to the OS (CRISISWATCH_MALLOC_TRIM_SECONDS).",
)
BATCH_DURATION = Histogram(
    "crisiswatch_batch_duration_seconds",
    "Wall time to process one batch, including awaiting delivery of its output.",
    ["stage"],
    buckets=BATCH_BUCKETS,
)

# -- latency and event time --------------------------------------------------
EVENT_TO_PROCESSED = Histogram(
    "crisiswatch_event_to_processed_seconds",
    "Mention created_at (event time) to the moment a stage processed it.",
    ["stage"],
    buckets=LAG_BUCKETS,
)
INGEST_TO_CRISIS_EVENT = Histogram(
    "crisiswatch_ingest_to_crisis_event_seconds",
    "Ingest of the newest mention of the closing bucket to publication of the "
    "crisis event it triggered.",
    ["status"],
    buckets=LAG_BUCKETS,
)
BUCKET_CLOSE_LAG = Histogram(
    "crisiswatch_bucket_close_lag_seconds",
    "Wall clock at bucket close minus the bucket's event-time end.",
    buckets=LAG_BUCKETS,
)
WATERMARK_LAG = Gauge(
    "crisiswatch_watermark_lag_seconds",
    "Wall clock minus the detect watermark (newest event time minus allowed lateness), "
    "per partition.",
    ["partition"],
)
CONSUMER_LAG = Gauge(
    "crisiswatch_consumer_lag_records",
    "Log end offset minus committed offset, per assigned partition.",
    ["topic", "partition"],
)
ASSIGNED_PARTITIONS = Gauge(
    "crisiswatch_assigned_partitions",
    "Partitions assigned to this worker, by topic.",
    ["topic"],
)

# -- detection ---------------------------------------------------------------
DETECTOR_SCORE = Histogram(
    "crisiswatch_detector_score",
    "Detector anomaly scores, one observation per brand per closed bucket.",
    ["detector"],
    buckets=SCORE_BUCKETS,
)
OPEN_CRISES = Gauge(
    "crisiswatch_open_crises",
    "Crises currently open on this worker, by kind and severity.",
    ["kind", "severity"],
)
CRISIS_EVENTS = Counter(
    "crisiswatch_crisis_events_total",
    "Crisis events published, by status, kind and severity.",
    ["status", "kind", "severity"],
)
BRANDS_KNOWN = Gauge(
    "crisiswatch_brands_known",
    "Brands this worker has counted at least one mention for.",
)
BRANDS_SILENT = Gauge(
    "crisiswatch_brands_silent",
    "Known brands with no new mention for CRISISWATCH_BRAND_SILENCE_SECONDS.",
)

# -- opt-in per-brand series (CRISISWATCH_METRICS_BRAND_LABELS) ----------------
BRAND_MENTIONS = Counter(
    "crisiswatch_brand_mentions_total",
    "Mentions counted by the detect stage, per brand (opt-in; capped).",
    ["brand"],
)
BRAND_CRISIS_EVENTS = Counter(
    "crisiswatch_brand_crisis_events_total",
    "Crisis events per brand and status (opt-in; capped).",
    ["brand", "status"],
)
BRAND_OPEN_CRISES = Gauge(
    "crisiswatch_brand_open_crises",
    "Open crises per brand (opt-in; capped).",
    ["brand"],
)

# -- responders (used by `crisiswatch respond`) -------------------------------
# ``sink`` is the sink's configured name (webhook, slack, pagerduty,
# alertmanager, stdout, file, webhook2...): bounded by configuration.
RESPONDER_EVENTS = Counter(
    "crisiswatch_responder_events_total",
    "Crisis events consumed by the responder.",
)
RESPONDER_DELIVERIES = Counter(
    "crisiswatch_responder_deliveries_total",
    "Crisis events delivered to a sink.",
    ["sink"],
)
RESPONDER_FAILURES = Counter(
    "crisiswatch_responder_failures_total",
    "Deliveries that failed after every retry (dead-lettered), by sink.",
    ["sink"],
)
RESPONDER_RETRIES = Counter(
    "crisiswatch_responder_retries_total",
    "Delivery attempts that were retries, by sink.",
    ["sink"],
)
RESPONDER_DEAD_LETTERS = Counter(
    "crisiswatch_responder_dead_letters_total",
    "Records the responder dead-lettered: invalid events, or a sink that kept failing.",
    ["reason"],
)
RESPONDER_ABORTS = Counter(
    "crisiswatch_responder_aborts_total",
    "Responder loops stopped because a dead-letter write failed.",
)
RESPONDER_DELIVERY_DURATION = Histogram(
    "crisiswatch_responder_delivery_seconds",
    "Time for one delivery to a sink, including retries.",
    ["sink"],
    buckets=DELIVERY_BUCKETS,
)

# -- build and model ---------------------------------------------------------
BUILD_INFO = Info("crisiswatch_build", "Version of crisiswatch and its runtime.")
MODEL_INFO = Info("crisiswatch_model", "Sentiment model and detector this worker runs.")


def _exported_names() -> tuple[str, ...]:
    names = []
    for m in (v for v in globals().values() if isinstance(v, Counter | Gauge | Histogram | Info)):
        base = m._name
        if isinstance(m, Counter):
            names.append(f"{base}_total")
        elif isinstance(m, Histogram):
            names += [f"{base}_bucket", f"{base}_sum", f"{base}_count"]
        elif isinstance(m, Info):
            names.append(f"{base}_info")
        else:
            names.append(base)
    return tuple(sorted(names))


#: Names of every metric defined here, as they appear in the exposition
#: (histograms add _bucket/_sum/_count; info adds _info).
EXPORTED: tuple[str, ...] = _exported_names()


# -- helpers -----------------------------------------------------------------
_REASON_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), c)
    for p, c in (
        (r"^empty record", "empty"),
        (r"^record too large|^text longer than", "too_large"),
        (r"^invalid JSON|JSONDecodeError", "invalid_json"),
        (r"must be a JSON object", "not_object"),
        (r"in the future", "future_timestamp"),
        (r"^late\b", "late"),
        (r"^mention\.v\d|^not a scored mention|required property|is not of type", "schema"),
    )
)


def dead_letter_reason_class(reason: str) -> str:
    """Map a free-text dead-letter reason to one of :data:`REASON_CLASSES`."""
    for pattern, cls in _REASON_RULES:
        if pattern.search(reason):
            return cls
    return "other"


def responder_count(key: str, n: int = 1) -> None:
    """Mirror one of the responder's counter keys into Prometheus.

    Keys are ``events``, ``delivered.<sink>``, ``retries.<sink>``,
    ``failed.<sink>``, ``deadletter.<reason>``, ``aborted``; unknown keys are
    ignored so a new counter never breaks delivery.

    >>> responder_count("delivered.slack")
    >>> RESPONDER_DELIVERIES.labels("slack")._value.get() >= 1
    True
    """
    kind, _, name = key.partition(".")
    if kind == "events":
        RESPONDER_EVENTS.inc(n)
    elif kind == "aborted":
        RESPONDER_ABORTS.inc(n)
    elif not name:
        return
    elif kind == "delivered":
        RESPONDER_DELIVERIES.labels(name).inc(n)
    elif kind == "retries":
        RESPONDER_RETRIES.labels(name).inc(n)
    elif kind == "failed":
        RESPONDER_FAILURES.labels(name).inc(n)
        RESPONDER_DEAD_LETTERS.labels("sink_failed").inc(n)
    elif kind == "deadletter":
        RESPONDER_DEAD_LETTERS.labels(name).inc(n)


def start_metrics_server(host: str, port: int) -> None:
    """Serve ``/metrics`` from a background thread, for processes without Faust's web server
    (the responder). Use the settings' ``web_host``/``web_port``."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)


_faust_metrics: Any = None


def install_faust_sensor(app: Any) -> None:
    """Faust's own Prometheus sensor, exported as ``crisiswatch_faust_*``.

    Only the monitor: ``/metrics`` stays ours and serves both, since they
    share the default registry. Created once per process (the registry
    refuses duplicate names).
    """
    global _faust_metrics
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    if _faust_metrics is None:
        _faust_metrics = FaustMetrics.create(REGISTRY, "crisiswatch_faust")
    app.monitor = PrometheusMonitor(metrics=_faust_metrics)


def faust_sensor_received(topic: str, n: int) -> None:
    """Count ``n`` messages the batch ingest path received in Faust's sensor, if installed.

    The ingest service reads ``mentions.raw`` outside Faust's streams (see
    :mod:`streams.fastpath`); without this, ``crisiswatch_faust_messages_received``
    would count only the envelopes the detect agent receives.
    """
    if _faust_metrics is not None and n:
        _faust_metrics.messages_received.inc(n)
        _faust_metrics.messages_received_per_topics.labels(topic=topic).inc(n)


def observe_many(hist: Any, values: np.ndarray | Iterable[float]) -> None:
    """``hist.observe(v)`` for every value, in one vectorised pass.

    ``observe`` takes a lock and walks the buckets per call (about 1.5 us);
    on the hot path that is a few percent of a mention's budget. The bucket
    counts are computed with numpy and added once per bucket, through the
    client's per-bucket values (stable across prometheus_client 0.x).
    Non-finite values are skipped, as they are never meaningful lags.

    >>> h = Histogram("doc_observe_many_seconds", "doc", buckets=(1.0, 2.0), registry=None)
    >>> observe_many(h, [0.5, 1.5, 1.5, 9.0])
    >>> [s.value for s in h.collect()[0].samples if s.name.endswith("_count")]
    [4.0]
    """
    import numpy as np  # the module stays importable without numpy loaded eagerly

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return
    bounds = np.asarray(hist._upper_bounds, dtype=np.float64)
    # observe(): the first bucket whose upper bound is >= the value.
    counts = np.bincount(np.searchsorted(bounds, v, side="left"), minlength=len(bounds))
    for i, c in enumerate(counts.tolist()):
        if c:
            hist._buckets[i].inc(c)
    hist._sum.inc(float(v.sum()))


def render(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The exposition for ``/metrics``."""
    return generate_latest(registry)


def set_info(settings: Settings, scorer_name: str, detector_name: str) -> None:
    import faust

    BUILD_INFO.info(
        {
            "version": __version__,
            "python": platform.python_version(),
            "faust": str(getattr(faust, "__version__", "unknown")),
            "platform": sys.platform,
        }
    )
    MODEL_INFO.info(
        {
            "sentiment_model": settings.sentiment_model,
            "scorer": scorer_name,
            "detector": detector_name,
        }
    )


def prime(topics: Mapping[str, str]) -> None:
    """Create the bounded label sets at zero, so rates and alerts see 0, not "no data".

    ``topics`` maps a stage input/output role to a topic name
    (``raw``, ``scored``, ``deadletter``, ``events``).
    """
    RECORDS_CONSUMED.labels("ingest", topics["raw"])
    RECORDS_CONSUMED.labels("detect", topics["scored"])
    for stage, results in RESULTS.items():
        for r in results:
            RECORDS_PROCESSED.labels(stage, r)
        BATCH_DURATION.labels(stage)
        EVENT_TO_PROCESSED.labels(stage)
    for role in ("scored", "deadletter", "events"):
        RECORDS_PRODUCED.labels(topics[role])
    for reason in REASON_CLASSES:
        DEAD_LETTERS.labels("ingest", reason)
    for reason in ("invalid_json", "schema", "late"):
        DEAD_LETTERS.labels("detect", reason)
    for status in STATUSES:
        INGEST_TO_CRISIS_EVENT.labels(status)
    for reason in ("too_large", "send_failed"):
        CHECKPOINT_FAILURES.labels(reason)


def observe_scores(detector: str, scores: np.ndarray) -> None:
    """One histogram observation per brand; runs once per bucket close per partition."""
    # Vectorised: a Python loop of observe() cost ~1.5 us per brand and close,
    # 4% of the worker's loop while it drained a day of backlog.
    observe_many(DETECTOR_SCORE.labels(detector), scores)


class ObservedDetector:
    """Wraps a detector so every ``update`` also records the score distribution.

    Everything except ``update`` is delegated, so the engine, its state
    round-trip and the backtest see the detector itself.
    """

    def __init__(self, inner: Detector) -> None:
        self._inner = inner

    def update(self, stats: BucketStats, timestamp: float | None = None) -> np.ndarray:
        scores = self._inner.update(stats, timestamp)
        observe_scores(self._inner.name, scores)
        return scores

    def update_many(
        self, stats: BucketStats, timestamps: Sequence[float]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        scores, signals = self._inner.update_many(stats, timestamps)
        observe_scores(self._inner.name, scores.ravel())
        return scores, signals

    # Set as well as read on the detector itself (the engine points it at each of
    # the buckets ``update_many`` scored while their lifecycle steps).
    @property
    def last_scores(self) -> dict[str, np.ndarray]:
        return self._inner.last_scores  # type: ignore[attr-defined]

    @last_scores.setter
    def last_scores(self, value: dict[str, np.ndarray]) -> None:
        self._inner.last_scores = value  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class IngestClock:
    """Newest ingest (wall-clock) time per open bucket of one partition.

    The scored record's Kafka timestamp is set when the ingest stage produced
    it, so it is the mention's ingest time. A crisis event reports on the
    bucket that just closed; its latency is measured from the newest mention
    of that bucket, the one that completed the evidence.
    """

    __slots__ = ("_newest", "width")

    def __init__(self, width: float) -> None:
        self.width = width
        self._newest: dict[int, float] = {}

    def add(self, event_time: float, ingest_time: float) -> None:
        b = int(event_time // self.width)
        if ingest_time > self._newest.get(b, 0.0):
            self._newest[b] = ingest_time

    def pop_until(self, end_bucket: int) -> dict[int, float]:
        """Forget (and return) buckets before ``end_bucket``: they are closed."""
        done = {b: t for b, t in self._newest.items() if b < end_bucket}
        for b in done:
            del self._newest[b]
        return done


class OpsState:
    """Gauges derived from the pipeline's state, refreshed by a periodic timer.

    Keeps the label sets it set last time so a partition that moved to
    another worker (or a crisis that resolved) drops to nothing instead of
    freezing at its old value.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.brand_labels = settings.metrics_brand_labels
        self.brand_limit = settings.metrics_brand_limit
        self._labelled_brands: set[str] = set()
        self._last_totals: dict[str, int] = {}
        self._last_change: dict[str, float] = {}
        self._watermark_parts: set[str] = set()
        self._lag_tps: set[tuple[str, str]] = set()
        self._brand_open: set[str] = set()
        self._assigned_topics: set[str] = set()
        from .lifecycle import KINDS

        # Every kind keeps its series (at 0), so "no crisis" reads as 0, not "no data".
        self._kinds: set[str] = set(KINDS)

    # -- per-brand (opt-in) ------------------------------------------------
    def brand_label(self, brand: str) -> str:
        """The brand itself while under the cap, then ``other`` (bounded cardinality)."""
        if brand in self._labelled_brands:
            return brand
        if len(self._labelled_brands) < self.brand_limit:
            self._labelled_brands.add(brand)
            return brand
        return "other"

    def crisis_event(self, ev: Mapping[str, Any]) -> None:
        CRISIS_EVENTS.labels(ev["status"], ev["kind"], ev["severity"]).inc()
        if self.brand_labels:
            BRAND_CRISIS_EVENTS.labels(self.brand_label(ev["brand"]), ev["status"]).inc()

    # -- periodic refresh --------------------------------------------------
    def refresh(self, engines: Mapping[int, DetectEngine], now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._open_crises(engines)
        self._watermarks(engines, now)
        self._brands(engines, now)

    def _open_crises(self, engines: Mapping[int, DetectEngine]) -> None:
        tally: TallyCounter[tuple[str, str]] = TallyCounter()
        per_brand: TallyCounter[str] = TallyCounter()
        for eng in engines.values():
            tally.update(eng.open_crises_by_kind_severity())
            if self.brand_labels:
                per_brand.update(eng.open_crisis_brands())
        self._kinds |= {k for k, _ in tally}
        for kind in self._kinds:
            for sev in SEVERITIES:
                OPEN_CRISES.labels(kind, sev).set(tally.get((kind, sev), 0))
        if self.brand_labels:
            labelled: TallyCounter[str] = TallyCounter()
            for brand, n in per_brand.items():
                labelled[self.brand_label(brand)] += n
            for brand in self._brand_open - set(labelled):
                BRAND_OPEN_CRISES.labels(brand).set(0)
            for brand, n in labelled.items():
                BRAND_OPEN_CRISES.labels(brand).set(n)
            self._brand_open |= set(labelled)

    def _watermarks(self, engines: Mapping[int, DetectEngine], now: float) -> None:
        seen: set[str] = set()
        for p, eng in engines.items():
            if math.isfinite(eng.max_event_time):
                # The watermark the engine closes by: one mention from a fast
                # clock does not make the lag negative.
                WATERMARK_LAG.labels(str(p)).set(now - eng.watermark(now))
                seen.add(str(p))
        for gone in self._watermark_parts - seen:
            WATERMARK_LAG.remove(gone)
        self._watermark_parts = seen

    def _brands(self, engines: Mapping[int, DetectEngine], now: float) -> None:
        totals: TallyCounter[str] = TallyCounter()
        for eng in engines.values():
            totals.update(eng.totals)
        silent_after = self.settings.brand_silence_seconds
        silent = 0
        for brand, n in totals.items():
            before = self._last_totals.get(brand)
            if before is None or n != before:
                self._last_change[brand] = now
                if self.brand_labels:
                    # Counters from the engines' totals: no per-record cost in the hot path.
                    delta = n - (before or 0)
                    if delta > 0:
                        BRAND_MENTIONS.labels(self.brand_label(brand)).inc(delta)
            elif now - self._last_change.get(brand, now) >= silent_after:
                silent += 1
        self._last_totals = dict(totals)
        BRANDS_KNOWN.set(len(totals))
        BRANDS_SILENT.set(silent)

    def consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set lag per (topic, partition); forget partitions no longer assigned."""
        seen: set[tuple[str, str]] = set()
        topics: TallyCounter[str] = TallyCounter()
        for (topic, p), lag in lags.items():
            key = (topic, str(p))
            CONSUMER_LAG.labels(*key).set(max(lag, 0))
            seen.add(key)
            topics[topic] += 1
        for key in self._lag_tps - seen:
            CONSUMER_LAG.remove(*key)
        self._lag_tps = seen
        for topic in self._assigned_topics - set(topics):
            ASSIGNED_PARTITIONS.labels(topic).set(0)
        for topic, n in topics.items():
            ASSIGNED_PARTITIONS.labels(topic).set(n)
        self._assigned_topics |= set(topics)


class DetectTiming:
    """Bucket-close lag and ingest-to-crisis-event latency, one clock per partition."""

    def __init__(self, width: float) -> None:
        self.width = width
        self.clocks: dict[int, IngestClock] = {}

    def seen(self, partition: int, event_time: float, ingest_time: float) -> None:
        clock = self.clocks.get(partition)
        if clock is None:
            clock = self.clocks[partition] = IngestClock(self.width)
        clock.add(event_time, ingest_time)

    def closed(
        self,
        partition: int,
        next_close: int | None,
        events: Iterable[Mapping[str, Any]],
        now: float | None = None,
    ) -> None:
        """Account for buckets before ``next_close`` (now closed) and the events they produced."""
        clock = self.clocks.get(partition)
        if clock is None or next_close is None:
            return
        now = time.time() if now is None else now
        done = clock.pop_until(next_close)
        for b in done:
            BUCKET_CLOSE_LAG.observe(max(now - (b + 1) * self.width, 0.0))
        for ev in events:
            # window_end is the end of the bucket that produced the event.
            end = datetime.fromisoformat(ev["window_end"]).timestamp()
            newest = done.get(round(end / self.width) - 1)
            if newest is not None:
                INGEST_TO_CRISIS_EVENT.labels(ev["status"]).observe(max(now - newest, 0.0))
