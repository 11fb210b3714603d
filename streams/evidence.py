"""Evidence for crisis events: what a communications team reads first.

Per brand and bucket, bounded accumulators over the *negative* mentions: the
most negative high-reach ones, their terms, authors with their reach,
"voices" (an author, or the author a repost amplifies), platforms. A crisis merges
the evidence of its buckets. At event time the terms are contrasted with the
brand's baseline (a small reservoir of recent mentions from calm buckets)
with scikit-learn's TF-IDF, so the top terms are the ones that set the
crisis apart rather than the brand's everyday vocabulary.

>>> ev = Evidence()
>>> ev.add({"id": "1", "text": "RT @star: awful service", "author": "a", "author_followers": 10,
...         "sentiment": -0.6, "sentiment_label": "negative", "platform": "twitter"})
>>> ev.top_voice()
('star', 1)
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EXAMPLES = 5
TOP_TERMS = 10
TOP_AUTHORS = 5
SAMPLE = 4  # texts kept per bucket and brand for the baseline vocabulary
MAX_KEYS = 2000  # per Counter; trimmed to the top 500 beyond this

_WORD = re.compile(r"[a-z][a-z'’]{2,}")
_REPOST = re.compile(r"^\s*(?:RT|rt)\s+@(\w{1,64})")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "you",
        "your",
        "with",
        "this",
        "that",
        "was",
        "are",
        "have",
        "has",
        "not",
        "but",
        "they",
        "them",
        "their",
        "our",
        "from",
        "what",
        "when",
        "just",
        "all",
        "can",
        "its",
        "it's",
        "get",
        "got",
        "out",
        "about",
        "would",
        "will",
        "been",
        "were",
        "there",
        "here",
        "who",
        "how",
        "why",
        "one",
        "very",
        "really",
        "more",
        "than",
        "then",
        "also",
        "too",
        "any",
        "much",
        "some",
        "even",
        "now",
        "ever",
        "still",
        "only",
        "into",
        "over",
        "after",
        "again",
        "dont",
        "don't",
        "im",
        "i'm",
        "ive",
        "i've",
        "she",
        "her",
        "his",
        "him",
        "let",
        "let's",
        "did",
        "does",
        "doing",
        "being",
        "had",
        "having",
        "off",
        "amp",
        "https",
        "http",
    ]
)


def terms_of(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@functools.lru_cache(maxsize=16_384)
def _baseline_terms(text: str) -> tuple[str, ...]:
    """:func:`terms_of` of a baseline text, cached: a brand's baseline texts
    (``baseline_texts`` of them) are contrasted again at every event of the
    brand, and tokenising them was two thirds of an event's evidence cost."""
    return tuple(terms_of(text))


#: One negative mention as evidence keeps it: (id, text, author, followers, sentiment, platform).
EvidenceRow = tuple[str, str, str | None, int | None, float, str | None]


def voice_of(doc: dict[str, Any]) -> str | None:
    """The voice a mention amplifies: the reposted author if it is a repost, else its author."""
    m = _REPOST.match(doc.get("text") or "")
    if m:
        return m.group(1)
    return doc.get("author") or None


def _trim(c: Counter[str]) -> Counter[str]:
    return Counter(dict(c.most_common(500))) if len(c) > MAX_KEYS else c


@dataclass(slots=True)
class Evidence:
    """Bounded evidence for one brand over one or more buckets."""

    examples: list[tuple[float, int, str, dict[str, Any]]] = field(default_factory=list)  # min-heap
    terms: Counter[str] = field(default_factory=Counter)
    authors: Counter[str] = field(default_factory=Counter)
    voices: Counter[str] = field(default_factory=Counter)
    platforms: Counter[str] = field(default_factory=Counter)
    reach: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    mentions: int = 0

    def add(self, doc: dict[str, Any]) -> None:
        """Add one *negative* mention (see :meth:`add_rows`)."""
        self.add_rows(
            [
                (
                    str(doc["id"]),
                    doc["text"],
                    doc.get("author"),
                    doc.get("author_followers"),
                    float(doc.get("sentiment") or 0.0),
                    doc.get("platform"),
                )
            ]
        )

    def add_rows(self, rows: Sequence[EvidenceRow]) -> None:
        """Add *negative* mentions, in arrival order, as (id, text, author, followers,
        sentiment, platform) rows.

        Only negative mentions come here (the engine keeps their rows): it is the
        negative conversation a comms team needs to see, and it keeps the
        per-mention cost off the calm majority.
        """
        self.mentions += len(rows)
        authors, reach, voices, platforms = self.authors, self.reach, self.voices, self.platforms
        repost = _REPOST.match
        terms: list[str] = []
        for mid, text, author, followers, sentiment, platform in rows:
            f = followers or 0
            if author:
                authors[author] += 1
                if f > reach.get(author, -1):
                    reach[author] = f
            rp = repost(text)
            voice = rp.group(1) if rp else author
            if voice:
                voices[voice] += 1
            platforms[platform or "unknown"] += 1
            # Most negative, highest reach first: the mentions a comms team must read.
            weight = -(sentiment or 0.0) * math.log10(10.0 + f)
            self.seq += 1
            # (weight, -seq, id): ties go to the earlier mention; the id keeps heap
            # comparisons away from the dicts when the evidence of buckets merges.
            key = (weight, -self.seq, mid)
            if len(self.examples) < EXAMPLES or key > self.examples[0][:3]:
                self._push(
                    (
                        *key,
                        {
                            "id": mid,
                            "text": text[:500],
                            "author": author,
                            "reach": f,
                            "sentiment": sentiment,
                            "platform": platform,
                        },
                    )
                )
            terms.extend(terms_of(text))
        self.terms.update(terms)

    def _push(self, item: tuple[float, int, str, dict[str, Any]]) -> None:
        if len(self.examples) < EXAMPLES:
            heapq.heappush(self.examples, item)
        elif item[:3] > self.examples[0][:3]:
            heapq.heapreplace(self.examples, item)

    def merge(self, other: Evidence) -> None:
        for item in other.examples:
            self._push(item)
        # In place (Counter.__add__ would copy the crisis's counters every bucket);
        # the same keys in the same order, so ties rank the same.
        self.terms.update(other.terms)
        self.authors.update(other.authors)
        self.voices.update(other.voices)
        self.terms, self.authors, self.voices = (
            _trim(self.terms),
            _trim(self.authors),
            _trim(self.voices),
        )
        self.platforms.update(other.platforms)
        self.mentions += other.mentions
        for a, r in other.reach.items():
            if r > self.reach.get(a, -1):
                self.reach[a] = r
        if len(self.reach) > MAX_KEYS:
            self.reach = {a: self.reach[a] for a in self.authors if a in self.reach}

    def top_voice(self) -> tuple[str, int] | None:
        if not self.voices:
            return None
        return self.voices.most_common(1)[0]

    def to_state(self) -> dict[str, Any]:
        return {
            "examples": [list(e) for e in self.examples],
            "terms": dict(self.terms),
            "authors": dict(self.authors),
            "voices": dict(self.voices),
            "platforms": dict(self.platforms),
            "reach": self.reach,
            "seq": self.seq,
            "mentions": self.mentions,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Evidence:
        ev = cls(
            examples=[(float(w), int(q), str(i), e) for w, q, i, e in st["examples"]],
            terms=Counter(st["terms"]),
            authors=Counter(st["authors"]),
            voices=Counter(st["voices"]),
            platforms=Counter(st["platforms"]),
            reach=dict(st["reach"]),
            seq=int(st["seq"]),
            mentions=int(st["mentions"]),
        )
        heapq.heapify(ev.examples)
        return ev

    def to_json(self, brand: str, baseline_texts: Sequence[str] = ()) -> dict[str, Any]:
        examples = [t[3] for t in sorted(self.examples, key=lambda t: t[:3], reverse=True)]
        top_voice = self.top_voice()
        out: dict[str, Any] = {
            "examples": examples,
            "top_terms": contrast_terms(self.terms, baseline_texts, exclude=terms_of(brand)),
            "top_authors": [
                {"author": a, "mentions": c, "reach": self.reach.get(a)}
                for a, c in self.authors.most_common(TOP_AUTHORS)
            ],
            "platforms": dict(self.platforms.most_common()),
        }
        if top_voice and self.mentions:
            out["top_voice"] = {
                "author": top_voice[0],
                "mentions": top_voice[1],
                "share": round(top_voice[1] / self.mentions, 4),
            }
        return out


def contrast_terms(
    window: Counter[str],
    baseline_texts: Sequence[str],
    exclude: Sequence[str] = (),
    k: int = TOP_TERMS,
) -> list[dict[str, Any]]:
    """Terms over-represented in the crisis window relative to the baseline.

    TF-IDF over two documents, the window's negative-mention term counts and
    the baseline's, weighted as scikit-learn's ``TfidfTransformer(sublinear_tf=True)``
    does (``tf = 1 + ln(count)``, smooth ``idf = ln(3 / (1 + df)) + 1``, rows
    l2-normalised; features in sorted order, as ``DictVectorizer`` gives them);
    weight = window tf-idf minus baseline tf-idf. Computed with numpy: the
    estimators' parameter validation cost 5 ms per event, and a test holds
    this to scikit-learn's result. Without a baseline, plain counts.

    >>> contrast_terms(Counter({"refund": 3, "store": 1}), ["nice store", "store open"])[0]["term"]
    'refund'
    """
    skip = set(exclude)
    window = Counter({t: c for t, c in window.items() if t not in skip})
    if not window:
        return []
    base = Counter(t for text in baseline_texts for t in _baseline_terms(text) if t not in skip)
    if not base:
        return [{"term": t, "weight": float(c)} for t, c in window.most_common(k)]
    names = sorted(window.keys() | base.keys())
    counts = np.array(
        [[window.get(t, 0) for t in names], [base.get(t, 0) for t in names]], dtype=np.float64
    )
    present = counts > 0
    tf = np.where(present, np.log(np.where(present, counts, 1.0)) + 1.0, 0.0)
    idf = np.log(3.0 / (1.0 + present.sum(axis=0))) + 1.0
    tfidf = tf * idf
    tfidf /= np.sqrt((tfidf * tfidf).sum(axis=1, keepdims=True))
    diff = tfidf[0] - tfidf[1]
    order = diff.argsort()[::-1][:k]
    return [
        {"term": names[j], "weight": round(float(diff[j]), 4)}
        for j in order.tolist()
        if diff[j] > 0
    ]
