"""Backtest report: one PNG per brand and an HTML summary page.

Each plot stacks volume, negative share and crisis score per bucket, with
the open threshold and the crisis spans shaded, so a person can see at a
glance why (and whether rightly) the detector fired.
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from .backtest import BacktestResult
from .settings import Settings

_SPAN_COLOUR = {
    "negativity_surge": "#d62728",
    "sentiment_shift": "#9467bd",
    "volume_spike": "#ff7f0e",
    "sustained_negativity": "#8c564b",
}


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def crisis_spans(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per brand: one span per crisis_id, from window_start to its last window_end."""
    spans: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for ev in events:
        sp = spans[ev["brand"]].setdefault(
            ev["crisis_id"],
            {
                "crisis_id": ev["crisis_id"],
                "kind": ev["kind"],
                "start": ev["window_start"],
                "severity": ev["severity"],
            },
        )
        sp["end"] = ev["window_end"]
        sp["severity"] = ev["severity"]
        sp["status"] = ev["status"]
    return {b: list(s.values()) for b, s in spans.items()}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "brand"


def plot_brand(
    brand: str, res: BacktestResult, spans: list[dict[str, Any]], settings: Settings, out: Path
) -> None:
    ser = res.series[brand]
    t = [datetime.fromtimestamp(b * settings.bucket_seconds, UTC) for b in ser.buckets]
    fig, axes = plt.subplots(3, 1, figsize=(11, 6.5), sharex=True, constrained_layout=True)
    axes[0].plot(t, ser.volume, lw=0.9, color="#1f77b4")
    axes[0].set_ylabel("mentions / bucket")
    axes[1].plot(t, ser.negative_share, lw=0.9, color="#d62728")
    axes[1].set_ylabel("negative share")
    axes[1].set_ylim(0, 1)
    # Logit scale: the interesting range is 0.99 .. 0.99999, invisible on a linear axis.
    eps = 1e-6
    axes[2].plot(t, [min(max(v, eps), 1 - eps) for v in ser.score], lw=0.9, color="black")
    axes[2].axhline(
        settings.open_threshold, color="#d62728", ls="--", lw=0.8, label="open threshold"
    )
    axes[2].set_yscale("logit")
    axes[2].set_ylim(1e-3, 1 - 1e-3)
    axes[2].set_ylabel("crisis score (logit)")
    axes[2].legend(loc="lower right", fontsize=8)
    for sp in spans:
        colour = _SPAN_COLOUR.get(sp["kind"], "grey")
        for ax in axes:
            ax.axvspan(_ts(sp["start"]), _ts(sp["end"]), color=colour, alpha=0.15, lw=0)
        axes[0].annotate(
            f"{sp['kind']} ({sp['severity']})",
            (_ts(sp["start"]), max(ser.volume or [1])),
            fontsize=8,
            color=colour,
            va="top",
        )
    axes[0].set_title(f"{brand}: {len(spans)} crisis(es), {res.totals.get(brand, 0)} mentions")
    axes[2].xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(axes[2].xaxis.get_major_locator())
    )
    fig.savefig(out, dpi=90)
    plt.close(fig)


def write_report(res: BacktestResult, settings: Settings, out_dir: Path) -> Path:
    """Write ``<brand>.png`` files and ``index.html``; return the index path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spans = crisis_spans(res.events)
    brands = sorted(res.series, key=lambda b: (-len(spans.get(b, [])), b))
    rows = []
    for brand in brands:
        png = f"{_safe(brand)}.png"
        plot_brand(brand, res, spans.get(brand, []), settings, out_dir / png)
        items = "".join(
            f"<li><b>{html.escape(sp['kind'])}</b> {html.escape(sp['severity'])}, "
            f"{html.escape(sp['start'])} → {html.escape(sp['end'])} ({html.escape(sp['status'])}), "
            f"<code>{sp['crisis_id'][:12]}</code></li>"
            for sp in spans.get(brand, [])
        )
        rows.append(
            f"<section><h2>{html.escape(brand)}</h2><ul>{items or '<li>no crisis</li>'}</ul>"
            f'<img src="{png}" alt="{html.escape(brand)} volume, negative share and crisis score"></section>'
        )
    by_status: dict[str, int] = defaultdict(int)
    for ev in res.events:
        by_status[ev["status"]] += 1
    summary = (
        f"{res.mentions} records, {sum(res.totals.values())} mentions counted, {len(res.dead)} dead-lettered, "
        f"{res.late} late, {res.duplicates} duplicates; {len(res.events)} events "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_status.items()))}); "
        f"{res.seconds:.1f}s ({res.mentions / max(res.seconds, 1e-9):,.0f} records/s)"
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crisiswatch backtest</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}img{{max-width:100%}}
section{{border-top:1px solid #ddd;margin-top:1.5em}}code{{color:#555}}</style></head>
<body><h1>crisiswatch backtest</h1><p>{html.escape(summary)}</p>
<p>Buckets of {settings.bucket_seconds}s, detector <code>{html.escape(settings.detector)}</code>,
open threshold {settings.open_threshold}, minimum volume {settings.min_volume}.</p>
{"".join(rows)}
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
