"""The trained linear scorer: hashed features x stored weights, in numba.

The model is a multinomial logistic regression fitted by scikit-learn
(:mod:`streams.sentiment.train`) on the features of
:mod:`streams.sentiment.features`. Scoring re-implements
``predict_proba`` (softmax of ``X @ coef.T + intercept``) as one numba
pass over the batch's texts (:func:`~streams.sentiment.features.linear_proba`:
the tokenizer's features go straight into the logits, no sparse matrix), so
it does not need scikit-learn or unpickling at run time: the artifact is
plain arrays in an ``.npz`` (loaded with ``allow_pickle=False``) plus a JSON
model card. The sparse-matrix route (:func:`featurize`, then :func:`_predict`)
is kept as the reference the fast path is tested against, bit for bit.

Output per text: the most probable class, and the score
``P(positive) - P(negative)`` (the expected label on a -1/0/+1 scale), which
lies in [-1, 1] and has the sign of the class whenever the class is not
neutral.

>>> s = load()
>>> b = s.score(["@united thanks, the crew was amazing!", "@united lost my bag AGAIN. worst airline"])
>>> [LABELS[i] for i in b.labels]
['positive', 'negative']
>>> bool(b.scores[0] > 0.5 and b.scores[1] < -0.5)
True
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from .base import LABELS, ScoreBatch, register
from .features import FEATURIZER_VERSION, N_DENSE, Lexicon, featurize, linear_proba

__all__ = ["ARTIFACT", "MODEL_NAME", "LinearScorer", "load"]

#: Registry name (``CRISISWATCH_SENTIMENT_MODEL=linear-v1``).
REGISTRY_NAME = "linear-v1"
#: Written to every scored mention as ``sentiment_source``.
MODEL_NAME = "crisiswatch-linear-v1"
ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
#: The shipped artifact: ``<ARTIFACT>.npz`` (arrays) and ``<ARTIFACT>.json`` (model card).
ARTIFACT = ARTIFACT_DIR / "linear-v1"


@numba.njit(cache=True, nogil=True)
def _predict(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    weights: npt.NDArray[np.floating[Any]],
    intercept: npt.NDArray[np.float64],
    proba: npt.NDArray[np.float64],
) -> None:
    """Softmax of the sparse rows times ``weights`` (features x classes) + intercept.

    The reference for :func:`~streams.sentiment.features.linear_proba`; kept
    separate from it on purpose, so the tests compare two implementations.
    """
    n_classes = weights.shape[1]
    z = np.empty(n_classes, dtype=np.float64)
    for i in range(indptr.shape[0] - 1):
        for c in range(n_classes):
            z[c] = intercept[c]
        for p in range(indptr[i], indptr[i + 1]):
            f = indices[p]
            v = data[p]
            for c in range(n_classes):
                z[c] += v * weights[f, c]
        # max-shifted softmax, as scikit-learn's, so large logits cannot overflow
        m = z[0]
        for c in range(1, n_classes):
            m = max(m, z[c])
        s = 0.0
        for c in range(n_classes):
            z[c] = math.exp(z[c] - m)
            s += z[c]
        for c in range(n_classes):
            proba[i, c] = z[c] / s


def _score_batch(proba: npt.NDArray[np.float64]) -> ScoreBatch:
    scores = np.clip(proba[:, 2] - proba[:, 0], -1.0, 1.0)
    return ScoreBatch(scores=scores, labels=proba.argmax(axis=1).astype(np.int8))


@numba.njit(cache=True, nogil=True)
def _scores_labels(
    proba: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int8]
) -> None:
    """:func:`_score_batch` in one pass: its numpy calls cost ~7 us a batch, most of a batch of 1."""
    for i in range(proba.shape[0]):
        x = proba[i, 2] - proba[i, 0]
        if x < -1.0:  # np.clip; NaN passes through, as there
            x = -1.0
        elif x > 1.0:
            x = 1.0
        scores[i] = x
        best = 0  # np.argmax: the first maximum, or the first NaN
        for c in range(1, proba.shape[1]):
            if not math.isnan(proba[i, best]) and (
                proba[i, c] > proba[i, best] or math.isnan(proba[i, c])
            ):
                best = c
        labels[i] = best


class LinearScorer:
    """Hashed n-grams + VADER lexicon features -> logistic regression.

    ``weights`` has one row per feature (``n_buckets + N_DENSE``) and one
    column per class of :data:`LABELS`. Pure and thread-safe: scoring reads
    the arrays and never writes them.
    """

    def __init__(
        self,
        weights: npt.NDArray[np.floating[Any]],
        intercept: npt.NDArray[np.float64],
        lexicon: Lexicon,
        *,
        n_buckets: int,
        name: str = MODEL_NAME,
        card: dict[str, Any] | None = None,
    ) -> None:
        if weights.shape != (n_buckets + N_DENSE, len(LABELS)):
            raise ValueError(
                f"weights shape {weights.shape} != ({n_buckets + N_DENSE}, {len(LABELS)})"
            )
        self.weights = np.ascontiguousarray(weights)
        self.intercept = np.ascontiguousarray(intercept, dtype=np.float64)
        self.lexicon = lexicon
        self.n_buckets = n_buckets
        self.name = name
        self.card: dict[str, Any] = card or {}

    def predict_proba(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Class probabilities, shape ``(len(texts), 3)``, columns in :data:`LABELS` order."""
        return linear_proba(texts, self.lexicon, self.n_buckets, self.weights, self.intercept)

    def predict_proba_csr(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """:meth:`predict_proba` the slow way: the CSR matrix training uses, then :func:`_predict`.

        The reference for tests and ``crisiswatch bench-sentiment``; the same numbers, bit for bit.
        """
        indptr, indices, data = featurize(texts, self.lexicon, self.n_buckets)
        proba = np.empty((len(texts), len(LABELS)), dtype=np.float64)
        _predict(indptr, indices, data, self.weights, self.intercept, proba)
        return proba

    def score(self, texts: Sequence[str]) -> ScoreBatch:
        proba = self.predict_proba(texts)
        scores = np.empty(len(proba), dtype=np.float64)
        labels = np.empty(len(proba), dtype=np.int8)
        _scores_labels(proba, scores, labels)
        return ScoreBatch(scores=scores, labels=labels)

    def score_csr(self, texts: Sequence[str]) -> ScoreBatch:
        """:meth:`score` through :meth:`predict_proba_csr` (reference and benchmark baseline)."""
        return _score_batch(self.predict_proba_csr(texts))

    # ------------------------------------------------------------ artifact

    def save(self, path: Path, card: dict[str, Any]) -> tuple[Path, Path]:
        """Write ``path.npz`` (arrays) and ``path.json`` (model card)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        npz, js = path.with_suffix(".npz"), path.with_suffix(".json")
        np.savez_compressed(
            npz,
            weights=self.weights.astype(np.float32),
            intercept=self.intercept,
            lex_keys=self.lexicon.keys,
            lex_values=self.lexicon.values,
            lex_flags=self.lexicon.flags,
        )
        js.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return npz, js

    @classmethod
    def from_artifact(cls, path: Path) -> LinearScorer:
        """Load ``path.npz`` + ``path.json``; never unpickles."""
        npz, js = path.with_suffix(".npz"), path.with_suffix(".json")
        try:
            card = json.loads(js.read_text(encoding="utf-8"))
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load sentiment model {path}: {exc}; "
                f"re-create it with `crisiswatch train-sentiment`"
            ) from None
        version = card.get("featurizer_version")
        if version != FEATURIZER_VERSION:
            raise ConfigError(
                f"sentiment model {path} was trained with featurizer v{version}, this code has "
                f"v{FEATURIZER_VERSION}; re-train with `crisiswatch train-sentiment`"
            )
        lexicon = Lexicon(
            keys=arrays["lex_keys"], values=arrays["lex_values"], flags=arrays["lex_flags"]
        )
        return cls(
            arrays["weights"],
            arrays["intercept"],
            lexicon,
            n_buckets=int(card["n_buckets"]),
            name=str(card.get("name", MODEL_NAME)),
            card=card,
        )


@functools.cache
def load(path: Path = ARTIFACT) -> LinearScorer:
    """The shipped model, loaded once per process (it is immutable)."""
    return LinearScorer.from_artifact(path)


@register(REGISTRY_NAME)
def _linear_v1() -> LinearScorer:
    return load()
