"""Synthetic mention streams with realistic rhythm, injected crises and distractors.

``generate(brands=8, days=14)`` returns mentions sorted by time and a truth
list. Every brand has its own base rate, a diurnal profile (quiet at night
UTC, busy in the afternoon), a weekly one (quieter weekends) and a baseline
tone. Scenarios are placed on distinct brands and days:

crises (must be detected)
  ``negativity_surge``      a tone-deaf post: volume x3, 70% negative, 2 h
  ``sentiment_shift``       a slow souring: volume x1.3, 40% negative, 6 h
  ``volume_spike``          one famous voice: a negative post and its reposts, volume x6, 1 h
  ``sustained_negativity``  after a surge, the brand's corporate apology lands badly: 45% negative for 12 h
distractors (must not alert)
  ``product_launch``        volume x4, 80% positive, 4 h
  ``viral_meme``            volume x8, 85% positive, 1 h
  ``ingest_gap``            no mentions at all for 2 h

>>> mentions, truth = generate(brands=2, days=2, seed=1, scenarios=["negativity_surge"])
>>> truth[0]["kind"], len(mentions) > 1000
('negativity_surge', True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

CRISES = ("negativity_surge", "sentiment_shift", "volume_spike", "sustained_negativity")
DISTRACTORS = ("product_launch", "viral_meme", "ingest_gap")
ALL = CRISES + DISTRACTORS

BRAND_NAMES = (
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka",
    "tyrell", "cyberdyne", "soylent", "oscorp", "massive", "vandelay", "gringotts", "duff",
)  # fmt: skip

POSITIVE = (
    "Loving my new {b} order, great quality!",
    "{b} support was super helpful today, thanks",
    "Just tried the new {b} app update and it is awesome",
    "Big fan of {b}, never disappoints",
    "Shoutout to {b} for the fast delivery :)",
    "The {b} store staff were friendly and kind",
    "honestly {b} just gets it 😍",
    "10/10 would recommend {b} to anyone",
)
NEUTRAL = (
    "Anyone know when {b} opens on Sunday?",
    "Heading to {b} after work",
    "{b} announced their quarterly results today",
    "Is the {b} sale online only?",
    "Comparing {b} with the other options",
    "Reading about {b} in the news",
    "what time does {b} close tonight",
    "Has anyone used the {b} rewards card",
)
NEGATIVE = (
    "{b} this is disgusting, how could you post that",
    "Absolutely awful ad from {b}, boycott them",
    "I am so angry at {b} right now, terrible and offensive",
    "{b} should be ashamed, worst company ever",
    "Never buying from {b} again, hateful and tone-deaf",
    "Deleting my {b} account, this is a disgrace",
    "{b} customer service is a joke, still no refund",
    "so disappointed in {b}, really bad",
)
LAUNCH = (
    "The new {b} phone is amazing, best launch ever!",
    "Just preordered the new {b} release, so excited!!",
    "{b} launch event was incredible, love it",
    "Wow the new {b} design is beautiful",
)
MEME = (
    "lmao the {b} mascot meme is the best thing today 😂",
    "this {b} meme is hilarious, I love it",
    "can't stop laughing at the {b} dance trend, amazing",
)
APOLOGY_BACKLASH = (
    "{b} apology is pathetic and insulting",
    "that corporate non-apology from {b} makes it worse",
    "{b} still not taking responsibility, disgraceful",
    "Nobody believes the {b} statement, shameful",
)

#: Poster of each single-voice spike; reposts carry "RT @<handle>:".
CELEBRITY = "famous_voice"


@dataclass(frozen=True)
class Scenario:
    kind: str
    brand: str
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "brand": self.brand,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "distractor": self.kind in DISTRACTORS,
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def diurnal(t: np.ndarray) -> np.ndarray:
    """Relative activity by time of day and weekday (mean about 1)."""
    hours = (t / 3600.0) % 24.0
    day = ((t // 86400.0) + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
    daily = 1.0 + 0.6 * np.cos(2 * math.pi * (hours - 15.0) / 24.0)
    weekly = np.where(day >= 5, 0.75, 1.07)
    return daily * weekly


def _plan(
    brands: Sequence[str],
    days: int,
    start: float,
    scenarios: Sequence[str],
    rng: np.random.Generator,
) -> list[Scenario]:
    """One scenario per (brand, day) slot, placed after a 3-day warm-up, in working hours."""
    out: list[Scenario] = []
    slots = [(b, d) for d in range(3, days) for b in range(len(brands))]
    rng.shuffle(slots)
    used_brand_days: set[tuple[int, int]] = set()
    k = 0
    for kind in scenarios:
        for _ in range(len(slots)):
            b, d = slots[k % len(slots)]
            k += 1
            if (
                (b, d) not in used_brand_days
                and (b, d - 1) not in used_brand_days
                and (b, d + 1) not in used_brand_days
            ):
                break
        else:  # every slot taken or next to a taken one (or none after the warm-up)
            raise ValueError(
                f"{len(scenarios)} scenarios do not fit {len(brands)} brands x {days} days "
                "(one per brand-day after a 3-day warm-up, never on adjacent days of a brand): "
                "use more brands or days, or fewer --scenario"
            )
        used_brand_days.add((b, d))
        t0 = (
            start + d * 86400 + float(rng.integers(9, 16)) * 3600 + float(rng.integers(0, 12)) * 300
        )
        dur = {
            "negativity_surge": 2 * 3600,
            "sentiment_shift": 6 * 3600,
            "volume_spike": 3600,
            "sustained_negativity": 14 * 3600,
            "product_launch": 4 * 3600,
            "viral_meme": 3600,
            "ingest_gap": 2 * 3600,
        }[kind]
        out.append(Scenario(kind, brands[b], t0, t0 + dur))
    return out


def generate(
    brands: int | Sequence[str] = 8,
    days: int = 14,
    *,
    seed: int = 0,
    start: float = 1_767_225_600.0,  # 2026-01-01T00:00:00Z, a Thursday
    scenarios: Sequence[str] | None = None,
    base_rate_range: tuple[float, float] = (8.0, 40.0),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Mentions (sorted by created_at) and the truth list of injected scenarios.

    ``base_rate_range`` is the mean number of mentions per brand per 5
    minutes. By default every crisis kind appears twice and every distractor
    once (11 scenarios).
    """
    rng = np.random.default_rng(seed)
    names = (
        list(brands)
        if not isinstance(brands, int)
        else [
            BRAND_NAMES[i % len(BRAND_NAMES)] + ("" if i < len(BRAND_NAMES) else str(i))
            for i in range(brands)
        ]
    )
    if scenarios is None:
        scenarios = [*CRISES, *CRISES, *DISTRACTORS]
    unknown = set(scenarios) - set(ALL)
    if unknown:
        raise ValueError(f"unknown scenario kinds {sorted(unknown)}; known: {', '.join(ALL)}")
    plan = _plan(names, days, start, scenarios, rng)
    minute = 60.0
    t = start + minute * np.arange(days * 1440)
    shape = diurnal(t)
    mentions: list[dict[str, Any]] = []
    for brand in names:
        rate = rng.uniform(*base_rate_range) / 5.0  # per minute
        neg0 = rng.uniform(0.06, 0.16)
        pos0 = rng.uniform(0.35, 0.5)
        lam = rate * shape
        neg = np.full(len(t), neg0)
        pos = np.full(len(t), pos0)
        special = np.zeros(len(t), dtype=np.int8)  # 0 none, else index into ALL + 1
        for sc in (s for s in plan if s.brand == brand):
            m = (t >= sc.start) & (t < sc.end)
            ramp = np.clip((t - sc.start) / 1200.0, 0.0, 1.0)  # 20-minute onset
            code = ALL.index(sc.kind) + 1
            if sc.kind == "negativity_surge":
                lam = np.where(m, lam * (1 + 2.0 * ramp), lam)
                neg = np.where(m, neg0 + (0.7 - neg0) * ramp, neg)
                pos = np.where(m, 0.1, pos)
            elif sc.kind == "sentiment_shift":
                lam = np.where(m, lam * 1.3, lam)
                neg = np.where(m, neg0 + (0.4 - neg0) * np.clip((t - sc.start) / 3600.0, 0, 1), neg)
                pos = np.where(m, 0.15, pos)
            elif sc.kind == "volume_spike":
                lam = np.where(m, lam * (1 + 5.0 * ramp), lam)
                neg = np.where(m, 0.55, neg)
                pos = np.where(m, 0.1, pos)
            elif sc.kind == "sustained_negativity":
                # A surge for the first 2 hours, then the apology: negativity stays.
                first = m & (t < sc.start + 7200)
                lam = np.where(first, lam * (1 + 2.0 * ramp), np.where(m, lam * 1.4, lam))
                neg = np.where(first, neg0 + (0.7 - neg0) * ramp, np.where(m, 0.45, neg))
                pos = np.where(m, 0.1, pos)
            elif sc.kind == "product_launch":
                lam = np.where(m, lam * (1 + 3.0 * ramp), lam)
                neg = np.where(m, neg0, neg)
                pos = np.where(m, 0.8, pos)
            elif sc.kind == "viral_meme":
                lam = np.where(m, lam * (1 + 7.0 * ramp), lam)
                neg = np.where(m, neg0 * 0.8, neg)
                pos = np.where(m, 0.85, pos)
            elif sc.kind == "ingest_gap":
                lam = np.where(m, 0.0, lam)
            special = np.where(m, code, special)
        counts = rng.poisson(lam)
        idx = np.repeat(np.arange(len(t)), counts)
        times = t[idx] + rng.uniform(0, minute, len(idx))
        for j, ts in zip(idx.tolist(), times.tolist(), strict=True):
            mentions.append(_mention(rng, brand, ts, neg[j], pos[j], int(special[j])))
    mentions.sort(key=lambda m: m["created_at"])
    for k, doc in enumerate(mentions, 1):
        doc["id"] = f"g{seed}-{k:08d}"
    return mentions, [s.to_json() for s in sorted(plan, key=lambda s: s.start)]


def _mention(
    rng: np.random.Generator, brand: str, ts: float, p_neg: float, p_pos: float, special: int
) -> dict[str, Any]:
    kind = ALL[special - 1] if special else None
    u = rng.random()
    author = f"user{int(rng.integers(200_000))}"
    followers = int(rng.lognormal(5, 2))
    reply_to = None
    pool: tuple[str, ...]
    if u < p_neg:
        pool = (
            APOLOGY_BACKLASH if kind == "sustained_negativity" and rng.random() < 0.5 else NEGATIVE
        )
        text = pool[int(rng.integers(len(pool)))].format(b=brand)
        if kind == "volume_spike" and rng.random() < 0.8:
            # The loud voice and its reposts.
            if rng.random() < 0.03:
                author, followers = CELEBRITY, 12_000_000
                text = f"I'm done with {brand}. Worst experience of my life, never again."
            else:
                text = f"RT @{CELEBRITY}: I'm done with {brand}. Worst experience of my life, never again."
                reply_to = f"{CELEBRITY}"
    elif u < p_neg + p_pos:
        pool = {"product_launch": LAUNCH, "viral_meme": MEME}.get(kind or "", POSITIVE)
        text = pool[int(rng.integers(len(pool)))].format(b=brand)
    else:
        text = NEUTRAL[int(rng.integers(len(NEUTRAL)))].format(b=brand)
    mention: dict[str, Any] = {
        "id": "",
        "brand": brand,
        "text": text,
        "created_at": _iso(ts),
        "author": author,
        "author_followers": followers,
        "platform": ("twitter", "reddit", "instagram", "tiktok")[int(rng.integers(4))],
        "lang": "en",
    }
    if reply_to:
        mention["in_reply_to"] = reply_to
    return mention
