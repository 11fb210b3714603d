"""Crisis lifecycle: from per-bucket detector scores to crisis events.

Per brand, after each closed bucket:

- **open** when the crisis score reaches ``open_threshold``, the bucket has
  at least ``min_volume`` mentions, the brand has ``warmup_buckets`` of
  history (young baselines are noisy), is not cooling down from a
  crisis that just resolved, and, when volume alone drove the score, the
  mood is not positive (a product launch or a viral meme is loud but not a
  crisis: the bucket's negative share must be clearly above the brand's
  baseline and its mean sentiment not above it). The kind comes from the signals that drove the score:
  ``volume_spike`` when one voice (an author and the reposts of that author)
  makes up at least ``single_voice_share`` of the bucket, else ``negativity_surge`` when the negative share did, else
  ``sentiment_shift`` when mean sentiment did, else ``volume_spike``.
- **escalate** when severity rises, or when negativity has not recovered
  ``sustained_after_buckets`` after opening (kind becomes
  ``sustained_negativity``: typically the brand's own response landed badly).
- **update** every ``update_every_buckets`` buckets while open.
- **resolve** after ``resolve_after_buckets`` consecutive quiet buckets:
  the fast signals (all but the slowly decaying mean-sentiment CUSUM) below
  ``close_threshold`` (hysteresis) and the negative share back
  near the baseline it had when the crisis opened (detector baselines adapt
  during a long crisis; the recovery test must not). Then a cooldown of
  ``cooldown_buckets`` so one incident is not ten alerts.

``crisis_id`` is a hash of the brand and the bucket the crisis opened in, so
the stream and the backtest, and every event of one crisis, agree on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detectors import BucketStats

from .evidence import Evidence
from .settings import Settings

SEVERITIES = ("low", "medium", "high", "critical")
KINDS = ("negativity_surge", "sentiment_shift", "volume_spike", "sustained_negativity")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def crisis_id(brand: str, opened_bucket: int) -> str:
    """Deterministic: the same crisis gets the same id in the stream and the backtest."""
    return hashlib.sha256(f"{brand}\x00{opened_bucket}".encode()).hexdigest()[:32]


@dataclass(slots=True)
class Baseline:
    """A brand's baselines before the bucket being judged (causal)."""

    volume: float | None
    negative_share: float | None
    mean_sentiment: float | None
    buckets: int = 0  # buckets of history behind these baselines


@dataclass(slots=True)
class OpenCrisis:
    crisis_id: str
    kind: str
    opened_bucket: int
    severity: int
    peak: float
    base_negshare: float
    base_volume: float
    share_ewma: float
    quiet: int = 0
    buckets: int = 0
    evidence: Evidence = field(default_factory=Evidence)

    def to_state(self) -> dict[str, Any]:
        return {
            "crisis_id": self.crisis_id,
            "kind": self.kind,
            "opened_bucket": self.opened_bucket,
            "severity": self.severity,
            "peak": self.peak,
            "base_negshare": self.base_negshare,
            "base_volume": self.base_volume,
            "share_ewma": self.share_ewma,
            "quiet": self.quiet,
            "buckets": self.buckets,
            "evidence": self.evidence.to_state(),
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> OpenCrisis:
        return cls(**{**st, "evidence": Evidence.from_state(st["evidence"])})


@dataclass(slots=True)
class Signals:
    """What the detector said about one brand in one bucket."""

    score: float
    drivers: list[str]
    per_signal: dict[str, float]


class Lifecycle:
    """Open crises and cooldowns of the brands of one engine."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.open: dict[int, OpenCrisis] = {}
        self.cooldown: dict[int, int] = {}
        # Brands whose mean-sentiment signal was still high when their crisis
        # resolved: it cannot reopen one on its own until it has come down
        # (hysteresis for a slowly decaying CUSUM).
        self.latched: set[int] = set()

    def to_state(self) -> dict[str, Any]:
        return {
            "open": {str(i): c.to_state() for i, c in self.open.items()},
            "cooldown": {str(i): b for i, b in self.cooldown.items()},
            "latched": sorted(self.latched),
        }

    def load_state(self, st: dict[str, Any]) -> None:
        self.open = {int(i): OpenCrisis.from_state(c) for i, c in st["open"].items()}
        self.cooldown = {int(i): b for i, b in st["cooldown"].items()}
        self.latched = set(st.get("latched", ()))

    # -- policy --------------------------------------------------------------
    def _recovery_share(self, base: float) -> float:
        return max(1.4 * base, base + 0.05)

    def _unhappy(self, share: float | None, mean: float | None, base: Baseline) -> bool:
        """Clearly more negative than usual, and not happier on average than usual."""
        if share is None:
            return False
        b = base.negative_share if base.negative_share is not None else 0.15
        if share < max(1.3 * b, b + 0.05):
            return False
        return not (
            mean is not None and base.mean_sentiment is not None and mean > base.mean_sentiment
        )

    def severity(
        self, count: float, share: float | None, base_share: float, base_volume: float
    ) -> int:
        ratio = (share or 0.0) / max(base_share, 0.02)
        level = 0 if ratio < 1.5 else 1 if ratio < 2.5 else 2 if ratio < 4 else 3
        if count >= 3 * max(base_volume, 1.0):
            level += 1
        return min(level, 3)

    def classify(self, sig: Signals, ev: Evidence | None, count: float) -> str:
        d = set(sig.drivers)
        voice = ev.top_voice() if ev else None
        if voice and voice[1] >= 5 and count and voice[1] / count >= self.s.single_voice_share:
            return "volume_spike"  # one author and the reposts of that author drive it
        if "negative_share" in d:
            return "negativity_surge"
        if "mean_sentiment" in d:
            return "sentiment_shift"
        if "volume" in d:
            return "volume_spike"
        return "negativity_surge"

    def step(
        self,
        i: int,
        brand: str,
        b: int,
        st: BucketStats,
        sig: Signals,
        base: Baseline,
        ev: Evidence | None,
    ) -> list[tuple[str, OpenCrisis]]:
        """Advance brand ``i`` by bucket ``b``; return (status, crisis) for each event."""
        s = self.s
        count = float(st.count[i])
        share = float(st.negative[i] / st.scored[i]) if st.scored[i] else None
        mean = float(st.sentiment_sum[i] / st.scored[i]) if st.scored[i] else None
        crisis = self.open.get(i)
        ms = sig.per_signal.get("mean_sentiment")
        if i in self.latched and (ms is None or ms < s.close_threshold):
            self.latched.discard(i)
        if base.buckets < s.warmup_buckets and ms is not None and ms >= s.close_threshold:
            self.latched.add(i)  # a CUSUM that climbed while the baseline was young
        if crisis is None:
            if set(sig.drivers) <= {"mean_sentiment"} and i in self.latched:
                return []
            if (
                sig.score < s.open_threshold
                or count < s.min_volume
                or base.buckets < s.warmup_buckets
                or self.cooldown.get(i, -1) >= b
            ):
                return []
            if set(sig.drivers) <= {"volume"} and not (
                # Volume alone is a crisis only when the extra voices are unhappy.
                self._unhappy(share, mean, base)
                and sig.per_signal.get("negative_share", 1.0) >= s.volume_negativity_score
            ):
                return []  # loud but not unhappy: a launch, a meme, a news day
            base_share = base.negative_share if base.negative_share is not None else 0.15
            base_volume = base.volume if base.volume is not None else count
            crisis = OpenCrisis(
                crisis_id(brand, b),
                self.classify(sig, ev, count),
                b,
                self.severity(count, share, base_share, base_volume),
                sig.score,
                base_share,
                base_volume,
                share if share is not None else base_share,
                buckets=1,
            )
            if ev:
                crisis.evidence.merge(ev)
            self.open[i] = crisis
            return [("opened", crisis)]

        if ev:
            crisis.evidence.merge(ev)
        crisis.buckets += 1
        crisis.peak = max(crisis.peak, sig.score)
        if share is not None:
            crisis.share_ewma += 0.3 * (share - crisis.share_ewma)
        recovered = crisis.share_ewma <= self._recovery_share(crisis.base_negshare)
        # A CUSUM on mean sentiment decays slowly after a shift ends; recovery
        # is judged on the negative share (above) and the fast signals.
        fast = max(
            (v for k, v in sig.per_signal.items() if k != "mean_sentiment"), default=sig.score
        )
        if (recovered and fast < s.close_threshold) or crisis.buckets >= s.max_open_buckets:
            crisis.quiet += 1
            if crisis.quiet >= s.resolve_after_buckets or crisis.buckets >= s.max_open_buckets:
                del self.open[i]
                self.cooldown[i] = b + s.cooldown_buckets
                if ms is not None and ms >= s.close_threshold:
                    self.latched.add(i)
                return [("resolved", crisis)]
            return []
        crisis.quiet = 0
        if (
            crisis.kind != "sustained_negativity"
            and crisis.buckets >= s.sustained_after_buckets
            and crisis.share_ewma >= max(1.8 * crisis.base_negshare, crisis.base_negshare + 0.1)
        ):
            crisis.kind = "sustained_negativity"
            return [("escalated", crisis)]
        sev = self.severity(count, share, crisis.base_negshare, crisis.base_volume)
        if sig.score >= s.open_threshold and sev > crisis.severity:
            crisis.severity = sev
            return [("escalated", crisis)]
        if crisis.buckets % s.update_every_buckets == 0:
            return [("updated", crisis)]
        return []

    def event(
        self,
        status: str,
        crisis: OpenCrisis,
        brand: str,
        b: int,
        width: int,
        st: BucketStats,
        i: int,
        sig: Signals,
        base: Baseline,
        baseline_texts: list[str],
    ) -> dict[str, Any]:
        scored = st.scored[i]
        share = float(st.negative[i] / scored) if scored else None
        mean = float(st.sentiment_sum[i] / scored) if scored else None
        clamp = lambda x: min(max(float(x), 0.0), 1.0)  # noqa: E731
        return {
            "schema_version": 1,
            "crisis_id": crisis.crisis_id,
            "brand": brand,
            "status": status,
            "kind": crisis.kind,
            "severity": SEVERITIES[crisis.severity],
            "score": clamp(sig.score),
            "peak_score": clamp(crisis.peak),
            "detected_at": iso((b + 1) * width),
            "window_start": iso(crisis.opened_bucket * width),
            "window_end": iso((b + 1) * width),
            "metrics": {
                "volume": {"observed": float(st.count[i]), "baseline": base.volume},
                "negative_share": {"observed": share, "baseline": base.negative_share},
                "mean_sentiment": {"observed": mean, "baseline": base.mean_sentiment},
            },
            "detectors": [
                {"name": name, "score": clamp(v), "fired": name in sig.drivers}
                for name, v in sig.per_signal.items()
            ],
            "evidence": crisis.evidence.to_json(brand, baseline_texts),
        }
