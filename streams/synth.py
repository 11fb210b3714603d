"""Synthetic mention streams with an injected negativity surge.

Used for the bundled demo stream and the end-to-end tests. Mentions arrive
as a Poisson process per brand with mostly neutral/positive texts; during
the surge one brand gets several times its volume and mostly negative
texts.

>>> ms = surge_stream(["acme", "globex"], 200, surge_brand="acme", seed=1)
>>> len(ms), sorted({m["brand"] for m in ms})
(200, ['acme', 'globex'])
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

POSITIVE = (
    "Loving my new {b} order, great quality!",
    "{b} support was super helpful today, thanks",
    "Just tried the new {b} app update and it is awesome",
    "Big fan of {b}, never disappoints",
    "Shoutout to {b} for the fast delivery :)",
    "The {b} store staff were friendly and kind",
)
NEUTRAL = (
    "Anyone know when {b} opens on Sunday?",
    "Heading to {b} after work",
    "{b} announced their quarterly results today",
    "Is the {b} sale online only?",
    "Comparing {b} with the other options",
    "Reading about {b} in the news",
)
NEGATIVE = (
    "{b} this is disgusting, how could you post that",
    "Absolutely awful ad from {b}, boycott them",
    "I am so angry at {b} right now, terrible and offensive",
    "{b} should be ashamed, worst company ever",
    "Never buying from {b} again, hateful and tone-deaf",
    "{b} apology is pathetic and insulting",
    "Deleting my {b} account, this is a disgrace",
)
BASE_NEGATIVE_SHARE = 0.12

#: Settings for these short (hours-long) streams: the default crisis detector
#: learns hour-of-day volume profiles and wants 12 hours of history, so the
#: demo and the quick tests run the negative-share detector alone, with a
#: short warm-up and its own thresholds (score = Phi(z) of the binomial tail).
QUICK_SETTINGS: dict[str, str] = {
    "detector": "negative_share",
    "open_threshold": "0.9999",
    "close_threshold": "0.95",
    "warmup_buckets": "12",
}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def surge_stream(
    brands: Sequence[str],
    n: int,
    *,
    surge_brand: str | None,
    seed: int = 0,
    start: float = 1_767_225_600.0,  # 2026-01-01T00:00:00Z
    duration_s: float = 6 * 3600,
    surge_at: float = 0.6,
    surge_len_s: float = 30 * 60,
    surge_volume: float = 4.0,
    surge_negative_share: float = 0.7,
) -> list[dict[str, Any]]:
    """``n`` mentions over ``duration_s`` seconds, sorted by time, with ids ``m000001``...

    The surge brand gets ``surge_volume`` times its usual rate and
    ``surge_negative_share`` negative texts from ``start + surge_at *
    duration_s`` for ``surge_len_s`` seconds.
    """
    rng = np.random.default_rng(seed)
    surge_t0 = start + surge_at * duration_s
    surge_t1 = surge_t0 + surge_len_s
    # Draw times from a piecewise-constant intensity per brand.
    weights = []
    for b in brands:
        boost = (surge_volume - 1.0) * surge_len_s / duration_s if b == surge_brand else 0.0
        weights.append(1.0 + boost)
    w = np.array(weights) / sum(weights)
    brand_idx = rng.choice(len(brands), size=n, p=w)
    times = np.empty(n)
    for k, b in enumerate(brands):
        sel = np.flatnonzero(brand_idx == k)
        if b == surge_brand:
            in_surge = rng.random(len(sel)) < (weights[k] - 1.0) / weights[k]
            times[sel] = np.where(
                in_surge,
                rng.uniform(surge_t0, surge_t1, len(sel)),
                rng.uniform(start, start + duration_s, len(sel)),
            )
        else:
            times[sel] = rng.uniform(start, start + duration_s, len(sel))
    order = np.argsort(times, kind="stable")
    out: list[dict[str, Any]] = []
    for seq, j in enumerate(order, 1):
        b = brands[brand_idx[j]]
        t = float(times[j])
        surging = b == surge_brand and surge_t0 <= t < surge_t1
        p_neg = surge_negative_share if surging else BASE_NEGATIVE_SHARE
        u = rng.random()
        pool: tuple[str, ...]
        if u < p_neg:
            pool = NEGATIVE
        elif u < p_neg + (1 - p_neg) / 2:
            pool = NEUTRAL
        else:
            pool = POSITIVE
        text = pool[int(rng.integers(len(pool)))].format(b=b)
        followers = int(rng.lognormal(5, 2))
        out.append(
            {
                "id": f"m{seq:06d}",
                "brand": b,
                "text": text,
                "created_at": _iso(t),
                "author": f"user{int(rng.integers(50_000))}",
                "author_followers": followers,
                "platform": "twitter" if rng.random() < 0.7 else "reddit",
                "lang": "en",
            }
        )
    return out
