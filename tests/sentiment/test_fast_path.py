"""The fused scoring path gives the CSR path's numbers bit for bit, and the features are v1's."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sentiment.data import Labelled, load_corpus
from streams.sentiment.features import (
    _B_HANDLE,
    _B_PUNCT,
    _B_RAW_WORD,
    _BYTE_CLASS,
    N_DENSE,
    _encode_spans,
    _featurize,
    _is_word_cp,
    _linear_proba,
    _nul_spans,
    build_lexicon,
    encode_batch,
    featurize,
    linear_proba,
    tokens,
)
from streams.sentiment.model import LinearScorer, _predict, _score_batch, _scores_labels, load

from .texts import HOSTILE, random_texts

# Digests of featurize() and tokens() over the whole corpus, HOSTILE and
# random_texts(5000) (tokens: HOSTILE and random_texts(2000, seed=7)),
# recorded with the featurizer of the shipped artifact (v1) before the fused
# path existed. A change here is a change of features: bump
# FEATURIZER_VERSION, re-train, and record the new digests (feature_digest).
V1_DIGESTS = {
    1 << 18: "9240b850c5f4ea0fea2b654df67b53fb3a49a7a56e81c15dbff35ade1d6ecfe1",
    1000: "fac078f7f72617a57d0ec327eaf3ecb07074d1269f9681d99f4152667591fba7",
}
V1_TOKENS_DIGEST = "636336d3c3c294ed19333fb990d53ef6f56984d70335c86865d7bc455c4cdecf"


def feature_digest(texts: list[str], n_buckets: int) -> str:
    indptr, indices, data = featurize(texts, load().lexicon, n_buckets)
    h = hashlib.sha256()
    h.update(indptr.tobytes())
    h.update(indices.tobytes())
    # rounded: the dense features come from libm, whose last bit may differ elsewhere
    h.update(np.round(data, 12).tobytes())
    return h.hexdigest()


def tokens_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    lex = load().lexicon
    for t in texts:
        h.update("\x1f".join(tokens(t, lex)).encode("utf-8", "surrogatepass") + b"\x1e")
    return h.hexdigest()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def stress_texts(corpus_split: tuple[Labelled, Labelled]) -> list[str]:
    _, held_out = corpus_split
    return held_out.texts[:4000] + HOSTILE + random_texts(3000, seed=11)


@pytest.mark.parametrize("n_buckets", sorted(V1_DIGESTS))
def test_features_are_those_of_v1(corpus_split: tuple[Labelled, Labelled], n_buckets: int) -> None:
    texts = load_corpus().texts + HOSTILE + random_texts(5000)
    assert feature_digest(texts, n_buckets) == V1_DIGESTS[n_buckets]


def test_tokens_are_those_of_v1() -> None:
    assert tokens_digest(HOSTILE + random_texts(2000, seed=7)) == V1_TOKENS_DIGEST


def test_shipped_model_fast_equals_csr_reference(stress_texts: list[str]) -> None:
    s = load()
    assert same_bits(s.predict_proba(stress_texts), s.predict_proba_csr(stress_texts))
    fast, ref = s.score(stress_texts), s.score_csr(stress_texts)
    assert same_bits(fast.scores, ref.scores) and same_bits(fast.labels, ref.labels)


@pytest.mark.parametrize(
    ("n_buckets", "dtype", "scale"), [(1000, np.float64, 1.0), (1 << 12, np.float32, 40.0)]
)
def test_other_models_fast_equals_csr_reference(
    stress_texts: list[str], n_buckets: int, dtype: type, scale: float
) -> None:
    """Float64 weights, a bucket count that is no power of two, logits large enough to overflow exp."""
    rng = np.random.default_rng(n_buckets)
    weights: np.ndarray = (rng.standard_normal((n_buckets + N_DENSE, 3)) * scale).astype(dtype)
    s = LinearScorer(weights, rng.standard_normal(3), build_lexicon(), n_buckets=n_buckets)
    fast, ref = s.predict_proba(stress_texts), s.predict_proba_csr(stress_texts)
    assert same_bits(fast, ref)
    assert np.isfinite(fast).all()


def test_any_number_of_classes(stress_texts: list[str]) -> None:
    """The kernel keeps a general loop beside its three-class one."""
    lex, nb = build_lexicon(), 1 << 10
    rng = np.random.default_rng(4)
    weights = rng.standard_normal((nb + N_DENSE, 4)).astype(np.float32)
    intercept = rng.standard_normal(4)
    indptr, indices, data = featurize(stress_texts, lex, nb)
    ref = np.empty((len(stress_texts), 4))
    _predict(indptr, indices, data, weights, intercept, ref)
    assert same_bits(linear_proba(stress_texts, lex, nb, weights, intercept), ref)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=120), max_size=12))
def test_fast_equals_csr_reference_on_any_text(texts: list[str]) -> None:
    s = load()
    assert same_bits(s.predict_proba(texts), s.predict_proba_csr(texts))


def test_scores_and_labels_as_numpy_gives_them() -> None:
    rng = np.random.default_rng(2)
    proba = np.vstack(
        [
            rng.dirichlet([1.0, 1.0, 1.0], 500),
            [[0.5, 0.5, 0.0], [0.2, 0.4, 0.4], [1 / 3] * 3, [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
            [[np.nan, 0.2, 0.3], [0.2, np.nan, np.nan], [2.0, 0.0, -3.0], [-5.0, 0.0, 5.0]],
        ]
    )
    scores, labels = np.empty(len(proba)), np.empty(len(proba), dtype=np.int8)
    _scores_labels(proba, scores, labels)
    ref = _score_batch(proba)
    assert scores.tobytes() == ref.scores.tobytes() and labels.tobytes() == ref.labels.tobytes()


def test_empty_batch() -> None:
    s = load()
    assert s.predict_proba([]).shape == (0, 3) and len(s.score([])) == 0


def test_spans_hold_each_text_and_at_most_a_nul() -> None:
    for texts in (
        HOSTILE,
        random_texts(500, seed=5),
        ["a\x00b", "c"],
        ["a\x00", "\x00"],
        ["\x00"],
        [""],
        ["", ""],
        [],
    ):
        b1, o1 = encode_batch(texts)
        b2, o2 = _encode_spans(texts)
        assert len(o2) == len(texts) + 1
        for d in range(len(texts)):
            text, span = bytes(b1[o1[d] : o1[d + 1]]), bytes(b2[o2[d] : o2[d + 1]])
            assert span in (text, text + b"\x00")


def test_byte_classes_match_the_code_point_rules() -> None:
    for b in range(256):
        raw_word = bool(_is_word_cp(b))
        assert bool(_BYTE_CLASS[b] & _B_RAW_WORD) == raw_word, b
        assert bool(_BYTE_CLASS[b] & _B_HANDLE) == (raw_word or b == 0x5F), b
        assert bool(_BYTE_CLASS[b] & _B_PUNCT) == (0x20 < b < 0x80 and not raw_word), b


def test_kernels_release_the_gil() -> None:
    # ingest scores in a worker thread while the event loop runs
    for kernel in (_linear_proba, _featurize, _nul_spans, _scores_labels):
        assert kernel.targetoptions.get("nogil") is True


def test_linear_proba_is_the_public_entry() -> None:
    s = load()
    texts = ["love it", "hate it", ""]
    assert same_bits(
        linear_proba(texts, s.lexicon, s.n_buckets, s.weights, s.intercept), s.predict_proba(texts)
    )
