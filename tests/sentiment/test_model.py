"""The shipped linear model: artifact, agreement with scikit-learn, headline metric."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from streams.sentiment import LABELS, load_scorer
from streams.sentiment.data import Labelled
from streams.sentiment.features import FEATURIZER_VERSION, build_lexicon
from streams.sentiment.model import ARTIFACT, MODEL_NAME, LinearScorer, load
from streams.sentiment.train import (
    TrainConfig,
    evaluate,
    feature_matrix,
    fit,
    scorer_from_sklearn,
)


def test_registered_and_named() -> None:
    s = load_scorer("linear-v1")
    assert s.name == MODEL_NAME == "crisiswatch-linear-v1"


def test_artifact_is_small_plain_arrays_and_a_card() -> None:
    npz, card_path = ARTIFACT.with_suffix(".npz"), ARTIFACT.with_suffix(".json")
    assert npz.stat().st_size < 20e6
    with zipfile.ZipFile(npz) as z:
        for name in z.namelist():
            # .npy headers only: an object (pickled) array would say 'O' in its dtype
            header = z.open(name).read(128)
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header
    with np.load(npz, allow_pickle=False) as arrays:
        assert set(arrays.files) == {"weights", "intercept", "lex_keys", "lex_values", "lex_flags"}
    card = json.loads(card_path.read_text())
    assert card["classes"] == list(LABELS)
    assert card["featurizer_version"] == FEATURIZER_VERSION
    assert "CC BY-NC-SA" in card["data"]["licence"]
    assert card["data"]["sha256"] and card["data"]["split"]["seed"]
    assert card["agreement_sklearn_vs_artifact"]["same_class"] == 1.0


def test_outputs_in_range_and_consistent() -> None:
    s = load()
    b = s.score(["love it", "hate it", "the flight is at 5pm", "", "😡😡😡"])
    assert b.scores.dtype == np.float64 and b.labels.dtype == np.int8
    assert ((b.scores >= -1) & (b.scores <= 1)).all()
    # a non-neutral class always has the score's sign
    assert (b.scores[b.labels == 0] < 0).all() and (b.scores[b.labels == 2] > 0).all()
    assert len(s.score([])) == 0


def test_shipped_weights_reproduce_sklearn_predictions(
    corpus_split: tuple[Labelled, Labelled],
) -> None:
    """A LogisticRegression holding the artifact's coefficients predicts what the fast path does."""
    _, held_out = corpus_split
    s = load()
    sk = LogisticRegression()
    sk.classes_ = np.arange(3)
    sk.coef_ = s.weights.T.astype(np.float64)
    sk.intercept_ = s.intercept
    X = feature_matrix(held_out.texts, s.lexicon, s.n_buckets)
    np.testing.assert_allclose(s.predict_proba(held_out.texts), sk.predict_proba(X), atol=1e-12)
    np.testing.assert_array_equal(s.score(held_out.texts).labels, sk.predict(X))


def test_fitted_sklearn_model_and_fast_inference_agree(
    corpus_split: tuple[Labelled, Labelled],
) -> None:
    """Fit here (small), then score the same texts both ways."""
    train, held_out = corpus_split
    small = train.subset(np.random.default_rng(0).choice(len(train), 3000, replace=False), "small")
    lex = build_lexicon()
    cfg = TrainConfig(n_buckets=1 << 14, C=1.0, max_iter=300)
    model = fit(small, lex, cfg)
    fast = scorer_from_sklearn(model, lex, cfg.n_buckets, dtype=np.float64)
    texts = held_out.texts[:2000]
    X = feature_matrix(texts, lex, cfg.n_buckets)
    np.testing.assert_allclose(fast.predict_proba(texts), model.predict_proba(X), atol=1e-12)
    np.testing.assert_array_equal(fast.score(texts).labels, model.predict(X))
    # the float32 copy the artifact would hold gives the same classes here too
    f32 = scorer_from_sklearn(model, lex, cfg.n_buckets)
    np.testing.assert_array_equal(f32.score(texts).labels, model.predict(X))


def test_held_out_macro_f1_beats_vader_by_008(corpus_split: tuple[Labelled, Labelled]) -> None:
    _, held_out = corpus_split
    model = evaluate(load(), held_out)
    vader = evaluate(load_scorer("vader"), held_out)
    assert model["macro_f1"] >= vader["macro_f1"] + 0.08, (model, vader)
    # and the card reports what the shipped artifact really does
    card = json.loads(ARTIFACT.with_suffix(".json").read_text())
    assert card["metrics"][0]["model"]["macro_f1"] == pytest.approx(model["macro_f1"], abs=1e-9)


@pytest.mark.slow
def test_training_is_reproducible(tmp_path, corpus_split: tuple[Labelled, Labelled]) -> None:
    """Re-training with the documented settings gives the shipped weights."""
    from streams.sentiment.train import train

    card = train(tmp_path / "m", TrainConfig(), log=lambda _msg: None)
    mine = LinearScorer.from_artifact(tmp_path / "m")
    shipped = load()
    np.testing.assert_allclose(mine.weights, shipped.weights, atol=1e-4)
    _, held_out = corpus_split
    same = np.mean(mine.score(held_out.texts).labels == shipped.score(held_out.texts).labels)
    assert same >= 0.999
    assert card["metrics"][0]["model"]["macro_f1"] == pytest.approx(
        shipped.card["metrics"][0]["model"]["macro_f1"], abs=2e-3
    )
