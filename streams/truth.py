"""Score crisis events against a truth file written by ``crisiswatch generate``.

A crisis scenario is *detected* when a crisis of that brand opens between
``start - early_tolerance`` and the scenario's ``end``; its detection delay
is ``detected_at - start`` of the first such crisis. Every other opened
crisis is a false alarm; the ones that open during a distractor scenario
(positive launch, meme, ingest gap) are also counted per distractor.

>>> truth = [{"kind": "negativity_surge", "brand": "a", "start": "2026-01-05T10:00:00Z",
...           "end": "2026-01-05T12:00:00Z", "distractor": False}]
>>> ev = [{"status": "opened", "brand": "a", "crisis_id": "x", "kind": "negativity_surge",
...        "window_start": "2026-01-05T10:10:00Z", "detected_at": "2026-01-05T10:15:00Z"}]
>>> r = score_events(ev, truth, brands=1, days=14)
>>> r["recall"], r["median_delay_minutes"], r["false_alarms"]
(1.0, 15.0, 0)
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

import orjson


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def score_events(
    events: list[dict[str, Any]],
    truth: list[dict[str, Any]],
    *,
    brands: int,
    days: float,
    early_tolerance_s: float = 1800.0,
) -> dict[str, Any]:
    opened = [e for e in events if e.get("status") == "opened"]
    opened.sort(key=lambda e: e["detected_at"])
    used: set[str] = set()
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    delays: list[float] = []
    rows = []
    for sc in truth:
        if sc.get("distractor"):
            continue
        start, end = _t(sc["start"]), _t(sc["end"])
        hit = next(
            (
                e
                for e in opened
                if e["brand"] == sc["brand"]
                and e["crisis_id"] not in used
                and start - early_tolerance_s <= _t(e["window_start"]) <= end
            ),
            None,
        )
        per_kind[sc["kind"]][1] += 1
        row = {**sc, "detected": hit is not None}
        if hit is not None:
            used.add(hit["crisis_id"])
            per_kind[sc["kind"]][0] += 1
            delay = max(0.0, _t(hit["detected_at"]) - start) / 60.0
            delays.append(delay)
            row.update(
                delay_minutes=round(delay, 1), detected_kind=hit["kind"], crisis_id=hit["crisis_id"]
            )
        rows.append(row)
    false_alarms = [e for e in opened if e["crisis_id"] not in used]
    on_distractors: dict[str, int] = defaultdict(int)
    for sc in truth:
        if not sc.get("distractor"):
            continue
        start, end = _t(sc["start"]), _t(sc["end"]) + 3600  # an hour of aftermath counts too
        n = sum(
            1
            for e in false_alarms
            if e["brand"] == sc["brand"] and start <= _t(e["window_start"]) <= end
        )
        on_distractors[sc["kind"]] += n
    brand_weeks = brands * days / 7.0
    crises = sum(v[1] for v in per_kind.values())
    found = sum(v[0] for v in per_kind.values())
    return {
        "crises": crises,
        "detected": found,
        "recall": round(found / crises, 4) if crises else None,
        "recall_by_kind": {k: round(v[0] / v[1], 4) for k, v in sorted(per_kind.items())},
        "median_delay_minutes": round(median(delays), 1) if delays else None,
        "max_delay_minutes": round(max(delays), 1) if delays else None,
        "false_alarms": len(false_alarms),
        "false_alarms_per_brand_week": round(len(false_alarms) / brand_weeks, 3)
        if brand_weeks
        else None,
        "alarms_on_distractors": dict(on_distractors),
        "scenarios": rows,
        "false_alarm_events": [
            {k: e[k] for k in ("brand", "kind", "window_start", "crisis_id")} for e in false_alarms
        ],
    }


def evaluate_files(events_path: Path, truth_path: Path) -> dict[str, Any]:
    """Score an events JSONL file against a truth JSON file; brands and days come from the truth."""
    from .errors import InputFileError

    try:
        truth = orjson.loads(truth_path.read_bytes())
        events = [
            orjson.loads(line) for line in events_path.read_bytes().splitlines() if line.strip()
        ]
    except FileNotFoundError as exc:
        raise InputFileError(f"{exc.filename}: no such file") from None
    except orjson.JSONDecodeError as exc:
        raise InputFileError(f"not JSON: {exc}") from None
    if not isinstance(truth, list) or not all(isinstance(t, dict) and "brand" in t for t in truth):
        raise InputFileError(
            f"{truth_path}: expected a list of scenarios as written by `crisiswatch generate`"
        )
    brands = sorted({e["brand"] for e in events} | {t["brand"] for t in truth})
    times = [_t(t["start"]) for t in truth] + [
        _t(e["detected_at"]) for e in events if "detected_at" in e
    ]
    days = max(1.0, (max(times) - min(times)) / 86400.0) if times else 1.0
    meta = truth_meta(truth_path)
    return score_events(
        events, truth, brands=meta.get("brands", len(brands)), days=meta.get("days", days)
    )


def truth_meta(truth_path: Path) -> dict[str, Any]:
    """``<truth>.meta.json`` beside the truth file, if ``generate`` wrote one (brands, days)."""
    meta = truth_path.with_suffix(".meta.json")
    return dict(orjson.loads(meta.read_bytes())) if meta.is_file() else {}


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"crises detected: {r['detected']}/{r['crises']} (recall {r['recall']})",
        "recall by kind: " + ", ".join(f"{k} {v}" for k, v in r["recall_by_kind"].items()),
        f"detection delay: median {r['median_delay_minutes']} min, max {r['max_delay_minutes']} min",
        f"false alarms: {r['false_alarms']} ({r['false_alarms_per_brand_week']} per brand-week)",
        "alarms on distractors: "
        + (", ".join(f"{k} {v}" for k, v in r["alarms_on_distractors"].items()) or "none"),
    ]
    for row in r["scenarios"]:
        mark = "✓" if row["detected"] else "✗"
        extra = (
            f" after {row['delay_minutes']} min as {row['detected_kind']}"
            if row["detected"]
            else ""
        )
        lines.append(f"  {mark} {row['kind']:22} {row['brand']:12} {row['start']}{extra}")
    return "\n".join(lines)
