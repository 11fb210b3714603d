"""streams/metrics.py: names, bounded labels, reason classes, derived gauges, /metrics page."""

from __future__ import annotations

import asyncio
import doctest
import re

import numpy as np
import pytest
from prometheus_client import REGISTRY

from streams import metrics as m
from streams.detect import DetectEngine
from streams.settings import Settings
from tests.malformed import malformed


def value(name: str, **labels: str) -> float:
    v = REGISTRY.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_doctests() -> None:
    assert doctest.testmod(m).failed == 0


def test_names_follow_prometheus_conventions() -> None:
    fams = [f for f in REGISTRY.collect() if f.name.startswith("crisiswatch_")]
    assert fams
    for f in fams:
        assert re.fullmatch(r"crisiswatch_[a-z0-9_]+", f.name), f.name
        if f.type == "counter":
            assert any(s.name == f"{f.name}_total" for s in f.samples) or not f.samples
        if f.type == "histogram" and f.name.startswith("crisiswatch_") and "faust" not in f.name:
            assert f.name.endswith("_seconds") or f.name == "crisiswatch_detector_score", f.name
    for name in m.EXPORTED:
        assert name.startswith("crisiswatch_")


def test_no_metric_has_a_brand_label_except_the_opt_in_ones() -> None:
    opt_in = {m.BRAND_MENTIONS, m.BRAND_CRISIS_EVENTS, m.BRAND_OPEN_CRISES}
    for metric in vars(m).values():
        if hasattr(metric, "_labelnames") and metric not in opt_in:
            assert not {"brand", "key", "id", "author"} & set(metric._labelnames), metric


def test_every_malformed_kind_maps_to_a_known_class() -> None:
    from streams.ingest import Ingestor, RawRecord
    from streams.sentiment import load_scorer

    ing = Ingestor(Settings(), load_scorer("vader"))
    res = ing.process([RawRecord(k, v) for k, v, _ in malformed(12)])
    assert len(res.dead) == 12
    classes = {m.dead_letter_reason_class(d.reason) for d in res.dead}
    assert classes <= set(m.REASON_CLASSES)
    assert "other" not in classes
    assert m.dead_letter_reason_class("empty record (null value)") == "empty"
    assert m.dead_letter_reason_class("late: bucket of created_at x already closed") == "late"
    assert m.dead_letter_reason_class("created_at 2999 is more than 3600s in the future") == (
        "future_timestamp"
    )
    assert m.dead_letter_reason_class("not a scored mention: KeyError('brand')") == "schema"
    assert m.dead_letter_reason_class("something new") == "other"


def _engine_with_crisis() -> DetectEngine:
    from streams.lifecycle import OpenCrisis

    eng = DetectEngine(Settings(bucket_seconds=60, allowed_lateness_seconds=0, min_volume=1))
    eng._brand("acme")
    eng._brand("globex")
    # The engine's state as the lifecycle leaves it with one open crisis.
    eng.lifecycle.open[0] = OpenCrisis("c1", "negativity_surge", 10, 2, 0.99999, 0.1, 10.0, 0.5)
    eng.counted = np.array([5, 3])  # acme 5, globex 3 mentions counted
    eng.max_event_time = 1000.0
    return eng


def test_ops_state_gauges_follow_the_engines() -> None:
    s = Settings(metrics_brand_labels=True, metrics_brand_limit=1, brand_silence_seconds=10)
    ops = m.OpsState(s)
    eng = _engine_with_crisis()
    ops.refresh({7: eng}, now=2000.0)
    assert value("crisiswatch_open_crises", kind="negativity_surge", severity="high") == 1
    assert value("crisiswatch_open_crises", kind="negativity_surge", severity="low") == 0
    # now - (newest event time - the engine's allowed lateness of 0 s)
    assert value("crisiswatch_watermark_lag_seconds", partition="7") == 2000.0 - 1000.0
    # One mention from a clock 50 minutes fast: the watermark the engine closes by
    # stops at the wall clock, and so does the lag (not -3,000 s).
    newest, eng.max_event_time = eng.max_event_time, 2000.0 + 3000.0
    ops.refresh({7: eng}, now=2000.0)
    assert value("crisiswatch_watermark_lag_seconds", partition="7") == 0.0
    eng.max_event_time = newest
    assert value("crisiswatch_brands_known") == 2
    assert value("crisiswatch_brands_silent") == 0
    # Brand labels are capped: the second brand becomes "other".
    assert value("crisiswatch_brand_open_crises", brand="acme") == 1
    before_other = value("crisiswatch_brand_mentions_total", brand="other")
    eng.counted += np.array([1, 2])  # one more for acme, two for globex
    ops.refresh({7: eng}, now=2005.0)
    assert value("crisiswatch_brand_mentions_total", brand="other") - before_other == 2
    # Nothing new for 10 s: both silent. A resolved crisis drops to 0.
    del eng.lifecycle.open[0]
    ops.refresh({7: eng}, now=2016.0)
    assert value("crisiswatch_brands_silent") == 2
    assert value("crisiswatch_open_crises", kind="negativity_surge", severity="high") == 0
    assert value("crisiswatch_brand_open_crises", brand="acme") == 0
    # A partition that moved away loses its watermark series.
    ops.refresh({}, now=2020.0)
    assert (
        REGISTRY.get_sample_value("crisiswatch_watermark_lag_seconds", {"partition": "7"}) is None
    )


def test_consumer_lag_forgets_revoked_partitions() -> None:
    ops = m.OpsState(Settings())
    ops.consumer_lag({("t.raw", 0): 5, ("t.raw", 1): 0, ("t.scored", 0): 3})
    assert value("crisiswatch_consumer_lag_records", topic="t.raw", partition="0") == 5
    assert value("crisiswatch_assigned_partitions", topic="t.raw") == 2
    ops.consumer_lag({("t.raw", 1): 2})
    assert (
        REGISTRY.get_sample_value(
            "crisiswatch_consumer_lag_records", {"topic": "t.raw", "partition": "0"}
        )
        is None
    )
    assert value("crisiswatch_assigned_partitions", topic="t.scored") == 0


def test_observed_detector_records_scores_and_delegates() -> None:
    from detectors import make_detector

    inner = make_detector("negative_share")
    det = m.ObservedDetector(inner)
    assert det.name == inner.name
    before = value("crisiswatch_detector_score_count", detector=inner.name)
    eng = DetectEngine(Settings(bucket_seconds=60, allowed_lateness_seconds=0), det)  # type: ignore[arg-type]
    docs = [
        {
            "id": str(i),
            "brand": b,
            "text": "bad",
            "sentiment": -0.5,
            "sentiment_label": "negative",
            "event_time": 30.0 + 60 * (i // 2),
        }
        for i, b in enumerate(["acme", "globex"] * 3)
    ]
    eng.add(docs)
    # Two closed buckets x two brands.
    assert value("crisiswatch_detector_score_count", detector=inner.name) - before == 4


def test_detect_timing_measures_bucket_close_and_event_latency() -> None:
    t = m.DetectTiming(60)
    t.seen(0, event_time=65.0, ingest_time=1000.0)
    t.seen(0, event_time=100.0, ingest_time=1002.0)
    before = value("crisiswatch_ingest_to_crisis_event_seconds_count", status="opened")
    before_sum = value("crisiswatch_ingest_to_crisis_event_seconds_sum", status="opened")
    close_before = value("crisiswatch_bucket_close_lag_seconds_count")
    ev = {"status": "opened", "window_end": "1970-01-01T00:02:00Z"}  # bucket 1 = [60, 120)
    t.closed(0, 2, [ev], now=1010.0)
    assert value("crisiswatch_bucket_close_lag_seconds_count") - close_before == 1
    assert value("crisiswatch_ingest_to_crisis_event_seconds_count", status="opened") - before == 1
    assert value(
        "crisiswatch_ingest_to_crisis_event_seconds_sum", status="opened"
    ) - before_sum == (pytest.approx(8.0))


def test_responder_counters() -> None:
    before = value("crisiswatch_responder_failures_total", sink="pagerduty")
    m.responder_count("failed.pagerduty", 2)
    m.responder_count("retries.pagerduty")
    m.responder_count("unknown.key")
    assert value("crisiswatch_responder_failures_total", sink="pagerduty") - before == 2
    assert value("crisiswatch_responder_retries_total", sink="pagerduty") >= 1


def test_observe_scores_skips_nan() -> None:
    before = value("crisiswatch_detector_score_count", detector="t")
    m.observe_scores("t", np.array([0.1, np.nan, 0.99999]))
    assert value("crisiswatch_detector_score_count", detector="t") - before == 2


def test_metrics_page_on_the_app() -> None:
    """create_app wires /metrics next to /health and /ready (no broker needed to build it)."""
    from streams.app import create_app

    app = create_app(Settings(kafka_bootstrap="127.0.0.1:1", metrics_faust_sensor=True))
    assert app.crisiswatch  # type: ignore[attr-defined]
    body = m.render().decode()
    for name in (
        "crisiswatch_records_consumed_total",
        "crisiswatch_dead_letters_total",
        "crisiswatch_build_info",
        "crisiswatch_model_info",
        "crisiswatch_faust_messages_received_total",
    ):
        assert name in body, name
    assert "version=0.0.4" in m.CONTENT_TYPE
    asyncio.set_event_loop(asyncio.new_event_loop())
