"""Evidence: the TF-IDF contrast equals scikit-learn's, and bulk rows equal one-by-one adds."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfTransformer

from streams.evidence import Evidence, contrast_terms, term_counts, terms_of

# Terms are 3+ letters (streams.evidence.terms_of): words of letters only.
words = st.sampled_from(
    ["".join(chr(97 + (i * 7 + j) % 26) for j in range(3 + i % 4)) for i in range(40)]
    + ["refund", "awful", "store"]
)


def sklearn_contrast(
    window: Counter[str], base_texts: list[str], k: int = 10, exclude: frozenset[str] = frozenset()
) -> list[str]:
    base = Counter(t for text in base_texts for t in terms_of(text) if t not in exclude)
    window = Counter({t: c for t, c in window.items() if t not in exclude})
    dv = DictVectorizer()
    counts = dv.fit_transform([dict(window), dict(base)])
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts).toarray()
    diff = tfidf[0] - tfidf[1]
    names = dv.get_feature_names_out()
    return [str(names[j]) for j in diff.argsort()[::-1][:k] if diff[j] > 0], diff  # type: ignore[return-value]


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(words, st.integers(1, 50), min_size=1, max_size=30),
    st.lists(st.lists(words, min_size=1, max_size=8).map(" ".join), min_size=1, max_size=6),
    st.frozensets(words, max_size=3),
)
def test_contrast_terms_equal_scikit_learns_tfidf(
    window: dict[str, int], base: list[str], exclude: frozenset[str]
) -> None:
    # The brand's own name is excluded from both documents (``exclude``).
    kept = {t: c for t, c in window.items() if t not in exclude}
    base_terms = {t for b in base for t in terms_of(b) if t not in exclude}
    got = contrast_terms(Counter(window), base, exclude=sorted(exclude))
    if not kept or not base_terms:
        assert got == [{"term": t, "weight": float(c)} for t, c in Counter(kept).most_common(10)]
        return
    want, diff = sklearn_contrast(Counter(window), base, exclude=exclude)
    weights = {d["term"]: d["weight"] for d in got}
    # Same weights (to the 4 decimals events carry); same ranking except among exact ties.
    names = sorted(set(kept) | base_terms)
    ref = dict(zip(names, diff.tolist(), strict=True))
    for term, w in weights.items():
        assert abs(w - ref[term]) < 1e-4
    assert sorted(round(ref[t], 9) for t in want) == sorted(round(ref[t], 9) for t in weights)


def test_rows_in_bulk_equal_one_by_one() -> None:
    rng = np.random.default_rng(3)
    docs = [
        {
            "id": str(i),
            "text": f"RT @voice{i % 3}: awful refund {i % 7}" if i % 4 == 0 else f"bad store {i}",
            "author": f"a{i % 5}" if i % 6 else None,
            "author_followers": int(rng.integers(0, 10_000)) if i % 3 else None,
            "sentiment": float(-rng.random()),
            "platform": ["x", None, "reddit"][i % 3],
        }
        for i in range(200)
    ]
    one = Evidence()
    for d in docs:
        one.add(d)
    bulk = Evidence()
    bulk.add_rows(
        [
            (d["id"], d["text"], d["author"], d["author_followers"], d["sentiment"], d["platform"])
            for d in docs
        ]
    )
    assert one.to_state() == bulk.to_state()
    assert one.to_json("acme", ["store is fine"]) == bulk.to_json("acme", ["store is fine"])


# Text built from the characters the term pattern cares about, plus a few
# whose lower case is special (Kelvin sign, dotted I, final sigma).
term_text = st.text(
    alphabet=st.sampled_from([*"abcxyzABZ'’ \n\t.-#@1é", "\u212a", "İ", "Σ", "😀", "\u00a0"]),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(term_text, max_size=8) | st.lists(st.text(max_size=40), max_size=5))
def test_term_counts_equal_a_counter_of_terms_of_text_by_text(texts: list[str]) -> None:
    want = Counter(t for text in texts for t in terms_of(text))
    got = term_counts(texts)
    assert list(got.items()) == list(want.items())  # the same counts, keys in the same order


def _reference_add_rows(ev: Evidence, rows: list[tuple]) -> None:  # type: ignore[type-arg]
    """The row-by-row version add_rows replaced (2026-12-01): same results, same key order."""
    import math

    from streams.evidence import _REPOST, EXAMPLES

    ev.mentions += len(rows)
    for mid, text, author, followers, sentiment, platform in rows:
        f = followers or 0
        if author:
            ev.authors[author] += 1
            if f > ev.reach.get(author, -1):
                ev.reach[author] = f
        rp = _REPOST.match(text)
        voice = rp.group(1) if rp else author
        if voice:
            ev.voices[voice] += 1
        ev.platforms[platform or "unknown"] += 1
        weight = -(sentiment or 0.0) * math.log10(10.0 + f)
        ev.seq += 1
        key = (weight, -ev.seq, mid)
        if len(ev.examples) < EXAMPLES or key > ev.examples[0][:3]:
            item = {"id": mid, "text": text[:500], "author": author, "reach": f}
            ev._push((*key, {**item, "sentiment": sentiment, "platform": platform}))
        ev.terms.update(terms_of(text))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            term_text | st.sampled_from(["RT @loud: awful refund", "rt  @x_1 store"]),
            st.sampled_from(["u1", "u2", None, ""]),
            st.none() | st.integers(0, 10**6),
            st.floats(-1, 0),
            st.sampled_from(["x", "reddit", None]),
        ),
        max_size=30,
    ),
    st.integers(1, 4),
)
def test_add_rows_equals_the_row_by_row_reference(rows: list[tuple], parts: int) -> None:  # type: ignore[type-arg]
    ref, new = Evidence(), Evidence()
    _reference_add_rows(ref, rows)
    step = max(len(rows) // parts, 1)
    for k in range(0, len(rows), step):  # in pieces, as buckets arrive
        new.add_rows(rows[k : k + step])
    for name in ("terms", "authors", "voices", "platforms", "reach"):
        assert list(getattr(new, name).items()) == list(getattr(ref, name).items()), name
    assert sorted(new.examples, key=lambda e: e[:3]) == sorted(ref.examples, key=lambda e: e[:3])
    assert (new.seq, new.mentions) == (ref.seq, ref.mentions)
