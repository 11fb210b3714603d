"""Text normalisation and hashed features (the numba tokenizer)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sentiment.features import (
    MAX_TOKENS,
    N_DENSE,
    NEG_SCOPE,
    build_lexicon,
    featurize,
    fnv1a,
    tokens,
)

LEX = build_lexicon()
NB = 1 << 16


def toks(text: str) -> list[str]:
    return tokens(text, LEX)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # URLs and handles are placeholders; a handle glued to punctuation still is one
        ("see https://t.co/AbC and www.x.com", ["see", "<url>", "and", "<url>"]),
        (".@JetBlue @united's crew", ["<user>", "<user>", "crew"]),
        # hashtags count as their word
        ("#fail #Delayed", ["fail", "delayed"]),
        # emoji: one token per code point, modifiers and joiners dropped
        ("ok 👍🏽❤️", ["ok", "👍", "❤"]),
        # emoticons kept whole, case-folded
        ("great :) :-( <3 :D", ["great", ":)", ":-(", "<3", ":d"]),
        # ALL-CAPS: lower-cased word plus a marker; short words are not caps
        ("WORST airline OK", ["worst", "<allcaps>", "airline", "ok"]),
        # elongation: two repeats, or one when only that is a lexicon word
        ("sooo goooood loooove", ["soo", "<elong>", "good", "<elong>", "love", "<elong>"]),
        # numbers, runs of ! and ?, HTML entities
        ("3 hours late!!! why??? &amp; &#39;", ["<num>", "hours", "late", "!", "why", "?"]),
        # typographic apostrophes are apostrophes
        ("don’t", ["don't"]),
    ],
)
def test_social_media_normalisation(text: str, expected: list[str]) -> None:
    assert toks(text) == expected


def test_negation_scope_ends_at_punctuation_or_after_neg_scope_words() -> None:
    assert toks("not good, bad") == ["not", "good_NEG", "bad"]
    assert toks("isn't good") == ["isn't", "good_NEG"]
    words = ["w"] * (NEG_SCOPE + 2)
    out = toks("never " + " ".join(words))
    assert out[1 : NEG_SCOPE + 1] == ["w_NEG"] * NEG_SCOPE
    assert out[NEG_SCOPE + 1 :] == ["w", "w"]


def test_hashes_match_the_python_reference() -> None:
    """Unigram features are FNV-1a of the token strings; bigrams of "prev cur"."""
    text = "@united NOT happy, flight delayed 😡 http://x.co"
    ts = toks(text)
    plain = [t for t in ts if t != "<allcaps>"]
    expected = {fnv1a(t.encode()) % NB for t in ts}
    # bigram chains restart at punctuation and never include _NEG marks or markers
    chains = [["<user>", "not", "happy"], ["flight", "delayed", "😡", "<url>"]]
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            expected.add(fnv1a(f"{a} {b}".encode()) % NB)
    assert "happy_NEG" in plain
    indptr, indices, _ = featurize([text], LEX, NB)
    assert set(indices[: indptr[1] - N_DENSE].tolist()) == expected


def test_lexicon_features_follow_vader_valence() -> None:
    indptr, indices, data = featurize(["love it", "hate it", "not love it", "a table"], LEX, NB)
    dense = np.array([data[indptr[i + 1] - N_DENSE : indptr[i + 1]] for i in range(4)])
    assert (indices[indptr[1] - N_DENSE : indptr[1]] == [NB, NB + 1, NB + 2]).all()
    assert dense[0, 0] > 0.5 and dense[1, 0] < -0.5  # compound
    assert dense[2, 0] < 0  # negated "love"
    assert (dense[3] == 0).all()


def test_empty_and_odd_inputs() -> None:
    texts = ["", "   ", "\ud800 lone surrogate", "\x00\x01", "a" * 100_000, "é" * 1000]
    indptr, indices, _ = featurize(texts, LEX, NB)
    assert len(indptr) == len(texts) + 1
    assert (np.diff(indptr) >= N_DENSE).all()
    assert (np.diff(indptr) <= 2 * MAX_TOKENS + N_DENSE).all()
    assert indices.min() >= 0 and indices.max() < NB + N_DENSE


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=8))
def test_batch_equals_one_by_one(texts: list[str]) -> None:
    indptr, indices, data = featurize(texts, LEX, NB)
    for i, t in enumerate(texts):
        _, x1, d1 = featurize([t], LEX, NB)
        assert indices[indptr[i] : indptr[i + 1]].tolist() == x1.tolist()
        np.testing.assert_array_equal(data[indptr[i] : indptr[i + 1]], d1)
        row = indices[indptr[i] : indptr[i + 1] - N_DENSE]
        assert (np.diff(row) > 0).all()  # sorted, de-duplicated
