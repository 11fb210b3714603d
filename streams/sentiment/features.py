"""Social-media text normalisation and hashed features, in numba.

One tokenizer serves training (it builds the sparse matrix scikit-learn fits
on) and scoring (the same matrix, multiplied by the stored weights), so the
model never sees text normalised one way in training and another way in
production. It runs over the UTF-8 bytes of a whole batch at once: Python
only encodes and concatenates the texts, which is what makes scoring cost a
few microseconds per mention instead of a regex pass per text.

What it does with tweet-specific text, and why:

- URLs (``http://``, ``https://``, ``www.``) -> ``<url>``; the address
  carries no sentiment and would only add unique, unlearnable features.
- ``@handles`` -> ``<user>``; the training corpus is full of airline handles,
  and learning that ``@united`` is negative would be learning a brand prior,
  not sentiment.
- ``#hashtags`` -> the word itself (``#fail`` counts as ``fail``).
- Emoji -> one token per code point (skin-tone modifiers, variation
  selectors and joiners dropped) with the valence VADER gives its
  description; emoticons such as ``:-(`` or ``<3`` are kept whole.
- Negation (VADER's negator list, ``no``, anything ending in ``n't``) marks
  the following words with ``_NEG`` until punctuation or
  :data:`NEG_SCOPE` words, after Das & Chen (2001) and Pang et al. (2002);
  VADER valences in the scope are flipped and damped as VADER does.
- ALL-CAPS words (3+ letters, no lower case) add an ``<allcaps>`` token and
  VADER's caps boost; the word itself is lower-cased.
- Elongated words (a letter repeated 3+ times) are shortened to two
  repeats (``soooo`` -> ``soo``), or to one when only that form is in the
  lexicon (``loooove`` -> ``love``), and add an ``<elong>`` token.
- Pure numbers -> ``<num>``; ``!`` and ``?`` runs -> one ``!`` / ``?`` token.

Features: hashed unigrams and bigrams (FNV-1a 64-bit, modulo ``n_buckets``;
bigrams do not cross punctuation), binary, followed by
:data:`N_DENSE` lexicon features (VADER-style compound of the summed
valences, and the squashed positive and negative sums).

>>> lex = build_lexicon()
>>> tokens("NOT happy @united, flight delayed sooo long :( http://t.co/x", lex)
['not', '<allcaps>', 'happy_NEG', '<user>', 'flight', 'delayed', 'soo', '<elong>', 'long', ':(', '<url>']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "FEATURIZER_VERSION",
    "NEG_SCOPE",
    "N_DENSE",
    "Lexicon",
    "build_lexicon",
    "encode_batch",
    "featurize",
    "fnv1a",
    "linear_proba",
    "tokens",
]

#: Bumped whenever a change to this module changes the features of any text;
#: an artifact trained with another version refuses to load.
FEATURIZER_VERSION = 1
#: Lexicon features appended after the hashed buckets.
N_DENSE = 3
#: Words after a negator that are marked negated (unless punctuation ends it first).
NEG_SCOPE = 4
#: Longer texts are truncated: tweets are short, and the bound keeps a
#: pathological 64 KiB mention from costing more than a few tweets.
MAX_TOKENS = 256
MAX_TOKEN_BYTES = 64

# VADER's constants (vaderSentiment.py): caps boost, negation damping, and
# the alpha of its compound normalisation x / sqrt(x^2 + alpha).
CAPS_INCR = 0.733
N_SCALAR = -0.74
VADER_ALPHA = 15.0

_FILTER_BITS = 17  # Lexicon.filter: 2^17 bits for ~7,500 keys, ~6% false "maybe"
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF

FLAG_NEGATOR = np.uint8(1)
FLAG_EMOTICON = np.uint8(2)

# Special tokens, in the order of their ids in the numba kernel.
_SPECIALS = ("<url>", "<user>", "<num>", "<allcaps>", "<elong>", "!", "?", "_NEG")
_SP_URL, _SP_USER, _SP_NUM, _SP_CAPS, _SP_ELONG, _SP_EXCL, _SP_QUES, _SP_NEG = range(8)

_KIND_WORD = 0  # takes part in bigrams
_KIND_MARK = 1  # unigram only

_EXTRA_NEGATORS = ("no", "nope", "never", "cannot", "nothing", "without")


def fnv1a(data: bytes, h: int = _FNV_OFFSET) -> int:
    """64-bit FNV-1a of ``data`` (continuing from ``h``); the reference for the kernel.

    >>> hex(fnv1a(b"a"))
    '0xaf63dc4c8601ec8c'
    """
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return h


@dataclass(frozen=True)
class Lexicon:
    """Open-addressing hash table of token hash -> (valence, flags).

    Keys are FNV-1a hashes of normalised tokens (0 marks an empty slot);
    the table ships in the model artifact so scoring needs nothing else.
    ``filter`` is derived from the keys: one bit per key, at bits 47..63 of
    its hash. Most words are in no lexicon, and a clear bit in this 16 KiB
    array (which stays in L1 cache) says so without touching the 128 KiB
    table; a set bit only means "look in the table".
    """

    keys: npt.NDArray[np.uint64]
    values: npt.NDArray[np.float32]
    flags: npt.NDArray[np.uint8]
    filter: npt.NDArray[np.uint64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bits = np.zeros(1 << (_FILTER_BITS - 6), dtype=np.uint64)
        pos = self.keys[self.keys != 0] >> np.uint64(64 - _FILTER_BITS)
        np.bitwise_or.at(bits, pos >> np.uint64(6), np.uint64(1) << (pos & np.uint64(63)))
        object.__setattr__(self, "filter", bits)

    def __len__(self) -> int:
        return int(np.count_nonzero(self.keys))


def _collapse(word: str, keep: int) -> str:
    out: list[str] = []
    for ch in word:
        if len(out) >= keep and ch.isalpha() and all(c == ch for c in out[-keep:]):
            continue
        out.append(ch)
    return "".join(out)


def _is_emoticon(word: str) -> bool:
    return any(not (c.isalnum() or c == "'") for c in word)


def build_lexicon() -> Lexicon:
    """The VADER lexicon, emoji valences and negators, hashed for the kernel.

    Emoji get the summed VADER valence of the words of their description
    (``😠`` "angry face" -> valence of "angry"), which is how VADER itself
    scores them.
    """
    from vaderSentiment.vaderSentiment import NEGATE, SentimentIntensityAnalyzer

    sia = SentimentIntensityAnalyzer()
    entries: dict[int, tuple[float, int]] = {}

    def put(token: str, value: float, flag: int) -> None:
        h = fnv1a(token.encode("utf-8")) or 1
        old_v, old_f = entries.get(h, (0.0, 0))
        entries[h] = (value if value else old_v, old_f | flag)

    for word, valence in sia.lexicon.items():
        w = word.lower()
        if _is_emoticon(w):
            put(w, valence, int(FLAG_EMOTICON))
        else:
            put(_collapse(w, 2), valence, 0)
    for emoji, desc in sia.emojis.items():
        cps = [c for c in emoji if ord(c) not in (0xFE0F, 0xFE0E, 0x200D)]
        if len(cps) != 1:
            continue
        valence = sum(sia.lexicon.get(w, 0.0) for w in desc.lower().replace("-", " ").split())
        if valence:
            put(cps[0], valence, 0)
    for neg in (*NEGATE, *_EXTRA_NEGATORS):
        put(neg.lower(), 0.0, int(FLAG_NEGATOR))

    size = 1 << max(10, math.ceil(math.log2(2 * len(entries))))
    keys = np.zeros(size, dtype=np.uint64)
    values = np.zeros(size, dtype=np.float32)
    flags = np.zeros(size, dtype=np.uint8)
    for h, (v, f) in sorted(entries.items()):
        i = h & (size - 1)
        while keys[i] != 0:
            i = (i + 1) & (size - 1)
        keys[i], values[i], flags[i] = h, v, f
    return Lexicon(keys=keys, values=values, flags=flags)


def _specials() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    raw = [s.encode() for s in _SPECIALS]
    off = np.zeros(len(raw) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(r) for r in raw])
    return np.frombuffer(b"".join(raw), dtype=np.uint8).copy(), off


_SP_BUF, _SP_OFF = _specials()


def encode_batch(texts: Sequence[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """UTF-8 bytes of all texts back to back, and the offsets of each text.

    >>> buf, off = encode_batch(["ab", "é"])
    >>> off.tolist(), bytes(buf)
    ([0, 2, 4], b'ab\\xc3\\xa9')
    """
    # surrogatepass: a lone surrogate from a bad JSON escape must not crash a batch.
    # UTF-8 encodes code point by code point, so encoding the joined batch once
    # gives the concatenation of the texts' encodings.
    joined = "".join(texts)
    buf = joined.encode("utf-8", "surrogatepass")
    n = len(texts)
    if len(buf) == len(joined):  # all ASCII: byte lengths are string lengths
        lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    else:
        lens = np.fromiter(
            (len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for t in texts),
            dtype=np.int64,
            count=n,
        )
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    return np.frombuffer(buf, dtype=np.uint8), off


def _encode_spans(texts: Sequence[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Like :func:`encode_batch`, but text ``d`` spans ``buf[off[d]:off[d + 1]]`` plus a NUL.

    The texts are joined with NUL bytes, encoded once, and the NULs found in
    numba: no Python work per text, which :func:`encode_batch` needs for the
    lengths. The tokenizer treats the NUL ending a span as the whitespace it
    is, so the tokens are those of the text alone. A text holding a NUL
    itself falls back to :func:`encode_batch`.
    """
    n = len(texts)
    if n == 0:
        return encode_batch(texts)
    buf = np.frombuffer("\x00".join(texts).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    off = np.empty(n + 1, dtype=np.int64)
    if _nul_spans(buf, off) != n - 1:  # a text holds a NUL: the spans are wrong
        return encode_batch(texts)
    return buf, off


# ---------------------------------------------------------------- kernels

_U_OFFSET = np.uint64(_FNV_OFFSET)
_U_PRIME = np.uint64(_FNV_PRIME)

# Byte classes: the hot loops test one table entry instead of a chain of ranges.
_B_WORD = 1  # ASCII letter, digit or apostrophe
_B_UPPER = 2
_B_LOWER = 4
_B_RAW_WORD = 8  # _is_word_cp of the byte value itself (how @handles are scanned)
_B_HANDLE = 16  # continues an @handle: _B_RAW_WORD or "_"
_B_PUNCT = 32  # ASCII, not whitespace, not a word byte: a chunk with one may be an emoticon


def _byte_classes() -> npt.NDArray[np.uint8]:
    cls = np.zeros(256, dtype=np.uint8)
    for b in range(256):
        ch = chr(b)
        ascii_word = b < 0x80 and (ch.isalnum() or b == 0x27)
        if ascii_word:
            cls[b] |= _B_WORD
        if 0x41 <= b <= 0x5A:
            cls[b] |= _B_UPPER
        if 0x61 <= b <= 0x7A:
            cls[b] |= _B_LOWER
        # Above 0x7F a byte read as a code point is Latin-1: word unless it is
        # C1/punctuation (0x80-0xBF) or the two symbols; see _is_separator_cp.
        if ascii_word or (b >= 0xC0 and b not in (0xD7, 0xF7)):
            cls[b] |= _B_RAW_WORD | _B_HANDLE
        if b == 0x5F:
            cls[b] |= _B_HANDLE
        if 0x20 < b < 0x80 and not ascii_word:
            cls[b] |= _B_PUNCT
    return cls


_BYTE_CLASS = _byte_classes()
_SP_HASH = np.array([fnv1a(s.encode()) for s in _SPECIALS], dtype=np.uint64)
_LIT_HTTP = np.frombuffer(b"http://", dtype=np.uint8).copy()
_LIT_HTTPS = np.frombuffer(b"https://", dtype=np.uint8).copy()
_LIT_WWW = np.frombuffer(b"www.", dtype=np.uint8).copy()


@numba.njit(cache=True, nogil=True)
def _nul_spans(buf: npt.NDArray[np.uint8], off: npt.NDArray[np.int64]) -> int:
    """Span starts after each NUL into ``off`` (as far as it has room); the number of NULs."""
    n = off.shape[0] - 1
    off[0] = 0
    k = 1
    for i in range(buf.shape[0]):
        if buf[i] == 0:
            if k < n:
                off[k] = i + 1
            k += 1
    off[n] = buf.shape[0]
    return k - 1


@numba.njit(cache=True, nogil=True)
def _fnv_bytes(h: np.uint64, buf: npt.NDArray[np.uint8], start: int, n: int) -> np.uint64:
    for t in range(start, start + n):
        h = (h ^ np.uint64(buf[t])) * _U_PRIME
    return h


@numba.njit(cache=True, nogil=True)
def _bigram(prev_h: np.uint64, buf: npt.NDArray[np.uint8], start: int, n: int) -> np.uint64:
    # hash of "<previous word> <this word>", both without the _NEG mark; 0 means "none"
    bi = _fnv_bytes((prev_h ^ np.uint64(0x20)) * _U_PRIME, buf, start, n)
    return bi if bi != np.uint64(0) else np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _lookup(keys: npt.NDArray[np.uint64], filt: npt.NDArray[np.uint64], h: np.uint64) -> int:
    if h == np.uint64(0):
        h = np.uint64(1)
    b = h >> np.uint64(64 - _FILTER_BITS)
    if (filt[b >> np.uint64(6)] >> (b & np.uint64(63))) & np.uint64(1) == np.uint64(0):
        return -1
    mask = keys.shape[0] - 1
    i = np.int64(h & np.uint64(mask))
    while True:
        k = keys[i]
        if k == h:
            return int(i)
        if k == np.uint64(0):
            return -1
        i = (i + 1) & mask


@numba.njit(cache=True, nogil=True)
def _decode(buf: npt.NDArray[np.uint8], k: int, end: int) -> tuple[int, int]:
    """(code point, byte length) at k; invalid bytes decode as U+FFFD, length 1."""
    c = int(buf[k])
    if c < 0x80:
        return c, 1
    if c >= 0xF8 or c < 0xC0:
        return 0xFFFD, 1
    if c >= 0xF0:
        n = 4
        cp = c & 0x07
    elif c >= 0xE0:
        n = 3
        cp = c & 0x0F
    else:
        n = 2
        cp = c & 0x1F
    if k + n > end:
        return 0xFFFD, 1
    for j in range(1, n):
        b = int(buf[k + j])
        if b & 0xC0 != 0x80:
            return 0xFFFD, 1
        cp = (cp << 6) | (b & 0x3F)
    return cp, n


@numba.njit(cache=True, nogil=True)
def _is_emoji(cp: int) -> bool:
    return (
        (0x1F000 <= cp <= 0x1FAFF and not (0x1F3FB <= cp <= 0x1F3FF))
        or 0x2600 <= cp <= 0x27BF
        or 0x2B00 <= cp <= 0x2BFF
        or 0x2300 <= cp <= 0x23FF
        or 0x2190 <= cp <= 0x21FF
        or 0x25A0 <= cp <= 0x25FF
        or cp == 0x2764
    )


@numba.njit(cache=True, nogil=True)
def _is_ignorable(cp: int) -> bool:
    # Modifiers that decorate an emoji: skin tones, variation selectors,
    # zero-width joiner, keycap, tag characters.
    return (
        0x1F3FB <= cp <= 0x1F3FF
        or cp == 0xFE0F
        or cp == 0xFE0E
        or cp == 0x200D
        or cp == 0x20E3
        or 0xE0020 <= cp <= 0xE007F
    )


@numba.njit(cache=True, nogil=True)
def _is_apostrophe(cp: int) -> bool:
    return cp == 0x27 or cp == 0x2019 or cp == 0x2018 or cp == 0x2BC


@numba.njit(cache=True, nogil=True)
def _is_separator_cp(cp: int) -> bool:
    # Non-ASCII punctuation, spaces, symbols and the replacement character.
    return (
        0x80 <= cp <= 0xBF
        or cp == 0xD7
        or cp == 0xF7
        or 0x2000 <= cp <= 0x206F
        or 0x20A0 <= cp <= 0x218F
        or 0x3000 <= cp <= 0x303F
        or cp == 0xFFFD
        or cp == 0xFEFF
    )


@numba.njit(cache=True, nogil=True)
def _is_word_cp(cp: int) -> bool:
    if cp < 0x80:
        return (_BYTE_CLASS[cp] & _B_WORD) != 0
    if _is_apostrophe(cp):
        return True
    return not (_is_separator_cp(cp) or _is_emoji(cp) or _is_ignorable(cp))


@numba.njit(cache=True, nogil=True)
def _starts(buf: npt.NDArray[np.uint8], i: int, j: int, lit: npt.NDArray[np.uint8]) -> bool:
    n = lit.shape[0]
    if j - i < n:
        return False
    for t in range(n):
        c = buf[i + t]
        if 0x41 <= c <= 0x5A:
            c += 32
        if c != lit[t]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _put(
    tok_uni: npt.NDArray[np.uint64],
    tok_bi: npt.NDArray[np.uint64],
    tok_val: npt.NDArray[np.float64],
    ntok: int,
    uni: np.uint64,
    bi: np.uint64,
    val: float,
    want_text: bool,
    txt: npt.NDArray[np.uint8],
    txt_off: npt.NDArray[np.int64],
    src: npt.NDArray[np.uint8],
    start: int,
    n: int,
    negated: bool,
) -> int:
    """Append one token; with ``want_text`` also its string (``src[start:start+n]``, + ``_NEG``)."""
    tok_uni[ntok] = uni
    tok_bi[ntok] = bi
    tok_val[ntok] = val
    if want_text:
        p = txt_off[ntok]
        for t in range(n):
            txt[p + t] = src[start + t]
        p += n
        if negated:
            for t in range(_SP_OFF[_SP_NEG], _SP_OFF[_SP_NEG + 1]):
                txt[p] = _SP_BUF[t]
                p += 1
        txt_off[ntok + 1] = p
    return ntok + 1


@numba.njit(cache=True, nogil=True)
def _put_special(
    sid: int,
    bigram: bool,
    prev_h: np.uint64,
    tok_uni: npt.NDArray[np.uint64],
    tok_bi: npt.NDArray[np.uint64],
    tok_val: npt.NDArray[np.float64],
    ntok: int,
    want_text: bool,
    txt: npt.NDArray[np.uint8],
    txt_off: npt.NDArray[np.int64],
) -> int:
    """Append special token ``sid`` (never negated, no valence), with a bigram if asked."""
    start = _SP_OFF[sid]
    n = _SP_OFF[sid + 1] - start
    bi = _bigram(prev_h, _SP_BUF, start, n) if bigram else np.uint64(0)
    return _put(
        tok_uni,
        tok_bi,
        tok_val,
        ntok,
        _SP_HASH[sid],
        bi,
        0.0,
        want_text,
        txt,
        txt_off,
        _SP_BUF,
        start,
        n,
        False,
    )


@numba.njit(cache=True, nogil=True)
def _tokenize_doc(
    buf: npt.NDArray[np.uint8],
    start: int,
    end: int,
    lex_keys: npt.NDArray[np.uint64],
    lex_vals: npt.NDArray[np.float32],
    lex_flags: npt.NDArray[np.uint8],
    lex_filter: npt.NDArray[np.uint64],
    tok_uni: npt.NDArray[np.uint64],
    tok_bi: npt.NDArray[np.uint64],
    tok_val: npt.NDArray[np.float64],
    scratch: npt.NDArray[np.uint8],
    scratch1: npt.NDArray[np.uint8],
    want_text: bool,
    txt: npt.NDArray[np.uint8],
    txt_off: npt.NDArray[np.int64],
) -> int:
    """Tokens of buf[start:end]: unigram hash, bigram hash (0: none), valence.

    The one tokenizer behind :func:`featurize` (training) and
    :func:`linear_proba` (scoring). With ``want_text`` the normalised token
    strings go to ``txt`` (offsets in ``txt_off``) so :func:`tokens` can
    show what the model sees.
    """
    ntok = 0
    neg_left = 0  # words still inside a negation scope
    has_prev = False
    prev_h = _U_OFFSET  # FNV hash of the previous word token (for bigrams)
    i = start
    limit = tok_uni.shape[0] - 4  # room for a token and its two markers
    while i < end and ntok < limit:
        if buf[i] <= 0x20:
            i += 1
            continue
        j = i
        seen = 0  # byte classes in the chunk
        while j < end and buf[j] > 0x20:
            seen |= _BYTE_CLASS[buf[j]]
            j += 1
        # --- whole-chunk cases: URL, emoticon
        c = buf[i] | 0x20
        if (c == 0x68 or c == 0x77) and (
            _starts(buf, i, j, _LIT_HTTP)
            or _starts(buf, i, j, _LIT_HTTPS)
            or _starts(buf, i, j, _LIT_WWW)
        ):
            ntok = _put_special(
                _SP_URL, has_prev, prev_h, tok_uni, tok_bi, tok_val, ntok, want_text, txt, txt_off
            )
            prev_h = _SP_HASH[_SP_URL]
            has_prev = True
            if neg_left > 0:
                neg_left -= 1
            i = j
            continue
        if j - i <= 10 and (seen & _B_PUNCT) != 0:  # a short chunk with punctuation
            n = j - i
            h = _U_OFFSET
            for t in range(n):
                c = buf[i + t]
                if 0x41 <= c <= 0x5A:
                    c += 32
                scratch[t] = c
                h = (h ^ np.uint64(c)) * _U_PRIME
            slot = _lookup(lex_keys, lex_filter, h)
            if slot >= 0 and (lex_flags[slot] & FLAG_EMOTICON) != 0:
                negated = neg_left > 0
                val = float(lex_vals[slot])
                if negated:
                    val *= N_SCALAR
                ntok = _put(
                    tok_uni,
                    tok_bi,
                    tok_val,
                    ntok,
                    _fnv_bytes(h, _SP_BUF, _SP_OFF[_SP_NEG], 4) if negated else h,
                    _bigram(prev_h, scratch, 0, n) if has_prev else np.uint64(0),
                    val,
                    want_text,
                    txt,
                    txt_off,
                    scratch,
                    0,
                    n,
                    negated,
                )
                prev_h = h
                has_prev = True
                if neg_left > 0:
                    neg_left -= 1
                i = j
                continue
        # --- scan inside the chunk
        k = i
        while k < j and ntok < limit:
            c = buf[k]
            if c < 0x80:
                cp = int(c)
                L = 1
            else:
                cp, L = _decode(buf, k, j)
            # @handle (the byte after "@" and the handle's bytes are tested as
            # code points, byte by byte)
            if cp == 0x40 and k + 1 < j and (_BYTE_CLASS[buf[k + 1]] & _B_RAW_WORD) != 0:
                k += 1
                while k < j and (_BYTE_CLASS[buf[k]] & _B_HANDLE) != 0:
                    k += 1
                ntok = _put_special(
                    _SP_USER,
                    has_prev,
                    prev_h,
                    tok_uni,
                    tok_bi,
                    tok_val,
                    ntok,
                    want_text,
                    txt,
                    txt_off,
                )
                prev_h = _SP_HASH[_SP_USER]
                has_prev = True
                continue
            if cp == 0x21 or cp == 0x3F:  # ! ?  (a run counts once)
                while k < j and buf[k] == cp:
                    k += 1
                sid = _SP_EXCL if cp == 0x21 else _SP_QUES
                ntok = _put_special(
                    sid, has_prev, prev_h, tok_uni, tok_bi, tok_val, ntok, want_text, txt, txt_off
                )
                has_prev = False  # bigrams and negation stop at punctuation
                neg_left = 0
                continue
            if cp == 0x26:  # HTML entity (&amp; &lt; &#39;): markup, not words
                t = k + 1
                while (
                    t < j
                    and t < k + 8
                    and ((_BYTE_CLASS[buf[t]] & _B_RAW_WORD) != 0 or buf[t] == 0x23)
                ):
                    t += 1
                if t < j and buf[t] == 0x3B and t > k + 1:
                    k = t + 1
                    continue
            if cp == 0x2E or cp == 0x2C or cp == 0x3B or cp == 0x3A or cp == 0x2026:
                has_prev = False
                neg_left = 0
                k += L
                continue
            if cp >= 0x80 and _is_emoji(cp):
                h = _fnv_bytes(_U_OFFSET, buf, k, L)
                slot = _lookup(lex_keys, lex_filter, h)
                val = float(lex_vals[slot]) if slot >= 0 else 0.0
                ntok = _put(
                    tok_uni,
                    tok_bi,
                    tok_val,
                    ntok,
                    h,
                    _bigram(prev_h, buf, k, L) if has_prev else np.uint64(0),
                    val,
                    want_text,
                    txt,
                    txt_off,
                    buf,
                    k,
                    L,
                    False,
                )
                prev_h = h
                has_prev = True
                k += L
                continue
            if not _is_word_cp(cp) or _is_apostrophe(cp):
                k += L  # separators, and apostrophes that open a word ('quoted')
                continue
            # --- a word: lower-case, collapse elongation, count case and digits.
            # scratch keeps up to two repeats of a letter, scratch1 one. The
            # unigram and bigram hashes of scratch are carried along (hu, hb),
            # and saved after each non-apostrophe byte (hu_w, hb_w, n_w): the
            # trailing apostrophes trimmed below are never part of the token.
            hu = _U_OFFSET
            hb = (prev_h ^ np.uint64(0x20)) * _U_PRIME
            hu_w = hu
            hb_w = hb
            n_w = 0
            n = 0
            n1 = 0
            run = 0
            last = -1
            letters = 0
            uppers = 0
            digits = 0
            elong = False
            while k < j:
                c = buf[k]
                if (
                    (_BYTE_CLASS[c] & _B_LOWER) != 0
                    and c != last
                    and n < MAX_TOKEN_BYTES
                    and n1 < MAX_TOKEN_BYTES
                ):
                    # The common byte, a lower-case letter that repeats nothing
                    # and fits: what the general case below does, in fewer steps.
                    letters += 1
                    run = 1
                    last = c
                    scratch[n] = c
                    n += 1
                    scratch1[n1] = c
                    n1 += 1
                    hu = (hu ^ np.uint64(c)) * _U_PRIME
                    hb = (hb ^ np.uint64(c)) * _U_PRIME
                    hu_w = hu
                    hb_w = hb
                    n_w = n
                    k += 1
                    continue
                is_ascii = c < 0x80
                if is_ascii:
                    cls = _BYTE_CLASS[c]
                    if (cls & _B_WORD) == 0:
                        break
                    L = 1
                    is_apos = c == 0x27
                else:
                    cp, L = _decode(buf, k, j)
                    if not _is_word_cp(cp):
                        break
                    is_apos = _is_apostrophe(cp)
                    cls = 0
                if is_apos:
                    if n < MAX_TOKEN_BYTES:
                        scratch[n] = 0x27
                        n += 1
                        hu = (hu ^ np.uint64(0x27)) * _U_PRIME
                        hb = (hb ^ np.uint64(0x27)) * _U_PRIME
                    if n1 < MAX_TOKEN_BYTES:
                        scratch1[n1] = 0x27
                        n1 += 1
                    last = 0x27
                    run = 1
                    k += L
                    continue
                if is_ascii:
                    ci = int(c)
                    is_letter = (cls & (_B_UPPER | _B_LOWER)) != 0
                    if (cls & _B_UPPER) != 0:
                        uppers += 1
                        ci += 32
                    if is_letter:
                        letters += 1
                    else:
                        digits += 1
                    if ci == last:
                        run += 1
                    else:
                        run = 1
                        last = ci
                    if run <= 2 or not is_letter:
                        if n < MAX_TOKEN_BYTES:
                            scratch[n] = ci
                            n += 1
                            hu = (hu ^ np.uint64(ci)) * _U_PRIME
                            hb = (hb ^ np.uint64(ci)) * _U_PRIME
                            hu_w = hu
                            hb_w = hb
                            n_w = n
                    else:
                        elong = True
                    if (run == 1 or not is_letter) and n1 < MAX_TOKEN_BYTES:
                        scratch1[n1] = ci
                        n1 += 1
                else:
                    letters += 1
                    last = -1
                    run = 0
                    for t in range(L):
                        if n < MAX_TOKEN_BYTES:
                            scratch[n] = buf[k + t]
                            n += 1
                            hu = (hu ^ np.uint64(buf[k + t])) * _U_PRIME
                            hb = (hb ^ np.uint64(buf[k + t])) * _U_PRIME
                            hu_w = hu
                            hb_w = hb
                            n_w = n
                        if n1 < MAX_TOKEN_BYTES:
                            scratch1[n1] = buf[k + t]
                            n1 += 1
                k += L
            n = n_w  # without trailing apostrophes
            while n1 > 0 and scratch1[n1 - 1] == 0x27:
                n1 -= 1
            if n == 0:
                continue
            if digits > 0 and letters == 0:
                s0 = _SP_OFF[_SP_NUM]
                n = _SP_OFF[_SP_NUM + 1] - s0
                for t in range(n):
                    scratch[t] = _SP_BUF[s0 + t]
                h = _SP_HASH[_SP_NUM]
                bi = _bigram(prev_h, scratch, 0, n)
                slot = -1
            else:
                h = hu_w
                bi = hb_w if hb_w != np.uint64(0) else np.uint64(1)
                slot = _lookup(lex_keys, lex_filter, h)
                if elong and (slot < 0 or lex_vals[slot] == 0.0):
                    h1 = _fnv_bytes(_U_OFFSET, scratch1, 0, n1)
                    slot1 = _lookup(lex_keys, lex_filter, h1)
                    if slot1 >= 0 and lex_vals[slot1] != 0.0:
                        slot = slot1
                        h = h1
                        n = n1
                        for t in range(n1):
                            scratch[t] = scratch1[t]
                        bi = _bigram(prev_h, scratch, 0, n)
            negator = slot >= 0 and (lex_flags[slot] & FLAG_NEGATOR) != 0
            if not negator and n >= 3 and scratch[n - 1] == 0x74 and scratch[n - 2] == 0x27:
                negator = scratch[n - 3] == 0x6E  # ...n't
            val = float(lex_vals[slot]) if slot >= 0 else 0.0
            caps = letters >= 3 and uppers == letters
            if caps and val != 0.0:
                val += CAPS_INCR if val > 0 else -CAPS_INCR
            negated = neg_left > 0 and not negator
            if negated:
                val *= N_SCALAR
            ntok = _put(
                tok_uni,
                tok_bi,
                tok_val,
                ntok,
                _fnv_bytes(h, _SP_BUF, _SP_OFF[_SP_NEG], 4) if negated else h,
                bi if has_prev else np.uint64(0),
                val,
                want_text,
                txt,
                txt_off,
                scratch,
                0,
                n,
                negated,
            )
            prev_h = h
            has_prev = True
            if neg_left > 0:
                neg_left -= 1
            if negator:
                neg_left = NEG_SCOPE
            # markers are unigrams: they neither take part in bigrams nor end them
            if caps:
                ntok = _put_special(
                    _SP_CAPS, False, prev_h, tok_uni, tok_bi, tok_val, ntok, want_text, txt, txt_off
                )
            if elong:
                ntok = _put_special(
                    _SP_ELONG,
                    False,
                    prev_h,
                    tok_uni,
                    tok_bi,
                    tok_val,
                    ntok,
                    want_text,
                    txt,
                    txt_off,
                )
        i = j
    return ntok


@numba.njit(cache=True, nogil=True)
def _doc_features(
    tok_uni: npt.NDArray[np.uint64],
    tok_bi: npt.NDArray[np.uint64],
    tok_val: npt.NDArray[np.float64],
    ntok: int,
    n_buckets: int,
    row: npt.NDArray[np.int32],
    srt: npt.NDArray[np.int32],
) -> tuple[int, float, float]:
    """A document's distinct hashed feature ids, ascending, in ``row[:m]``; (m, pos, neg).

    Shared by :func:`featurize` and :func:`linear_proba`, so training and
    scoring see the same ids in the same order. ``pos`` and ``neg`` are the
    summed positive and negative valences, in token order. ``srt`` is
    scratch of ``row``'s size.
    """
    nb = np.uint64(n_buckets)
    mask = nb - np.uint64(1)
    pow2 = (n_buckets & (n_buckets - 1)) == 0  # a mask is much cheaper than a division
    m = 0
    pos = 0.0
    neg = 0.0
    for t in range(ntok):
        u = tok_uni[t]
        row[m] = np.int32(u & mask) if pow2 else np.int32(u % nb)
        m += 1
        b = tok_bi[t]
        if b != np.uint64(0):
            row[m] = np.int32(b & mask) if pow2 else np.int32(b % nb)
            m += 1
        v = tok_val[t]
        if v > 0:
            pos += v
        else:
            neg += v
    # Sort and de-duplicate by rank: an id's place is the number of smaller ids,
    # so repeats land on one slot and leave the next empty (-1). The counting
    # loop has no data-dependent branch and vectorises; the insertion sort it
    # replaces spent most of its time in mispredicted loop exits.
    for a in range(m):
        srt[a] = -1
    for a in range(m):
        x = row[a]
        r = 0
        for b in range(m):
            r += 1 if row[b] < x else 0
        srt[r] = x
    u = 0
    for a in range(m):
        if srt[a] >= 0:
            row[u] = srt[a]
            u += 1
    return u, pos, neg


@numba.njit(cache=True, nogil=True)
def _dense(pos: float, neg: float) -> tuple[float, float, float]:
    """The :data:`N_DENSE` lexicon features: VADER compound, squashed positive and negative sums."""
    # Most texts have no positive or no negative word: f(0) is 0 for all three
    # (with the sign of the zero), and skipping libm there is exact.
    s = pos + neg
    d0 = s / math.sqrt(s * s + VADER_ALPHA) if s != 0.0 else s / math.sqrt(VADER_ALPHA)
    d1 = math.tanh(pos / 4.0) if pos != 0.0 else pos
    d2 = math.tanh(neg / 4.0) if neg != 0.0 else neg
    return d0, d1, d2


@numba.njit(cache=True, nogil=True)
def _featurize(
    buf: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    n_buckets: int,
    lex_keys: npt.NDArray[np.uint64],
    lex_vals: npt.NDArray[np.float32],
    lex_flags: npt.NDArray[np.uint8],
    lex_filter: npt.NDArray[np.uint64],
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
) -> None:
    """CSR rows (sorted, de-duplicated) of hashed features + dense lexicon features."""
    n_docs = offsets.shape[0] - 1
    tok_uni = np.empty(MAX_TOKENS, dtype=np.uint64)
    tok_bi = np.empty(MAX_TOKENS, dtype=np.uint64)
    tok_val = np.empty(MAX_TOKENS, dtype=np.float64)
    scratch = np.empty(MAX_TOKEN_BYTES + 8, dtype=np.uint8)
    scratch1 = np.empty(MAX_TOKEN_BYTES + 8, dtype=np.uint8)
    txt = np.empty(0, dtype=np.uint8)
    txt_off = np.empty(1, dtype=np.int64)
    row = np.empty(2 * MAX_TOKENS, dtype=np.int32)
    srt = np.empty(2 * MAX_TOKENS, dtype=np.int32)
    p = 0
    indptr[0] = 0
    for d in range(n_docs):
        ntok = _tokenize_doc(
            buf,
            offsets[d],
            offsets[d + 1],
            lex_keys,
            lex_vals,
            lex_flags,
            lex_filter,
            tok_uni,
            tok_bi,
            tok_val,
            scratch,
            scratch1,
            False,
            txt,
            txt_off,
        )
        m, pos, neg = _doc_features(tok_uni, tok_bi, tok_val, ntok, n_buckets, row, srt)
        for a in range(m):
            indices[p] = row[a]
            data[p] = 1.0
            p += 1
        d0, d1, d2 = _dense(pos, neg)
        indices[p] = n_buckets
        data[p] = d0
        indices[p + 1] = n_buckets + 1
        data[p + 1] = d1
        indices[p + 2] = n_buckets + 2
        data[p + 2] = d2
        p += N_DENSE
        indptr[d + 1] = p


# No NRT (numba's reference-counted runtime) here: with it, the arrays handed to
# the helpers were reference counted (atomic increments) per document and per
# token, about a fifth of the time on tweets; inlining the helpers
# (inline="always") recovered part of that but made compiling each kernel take
# half a minute. Without NRT the kernel cannot allocate, so the caller passes
# the work arrays. `_nrt` is numba's own (not
# typed, not documented) target option, there since numba 0.2x; if a release
# drops it, this decorator fails at import, and removing the option is safe.
@numba.njit(cache=True, nogil=True, _nrt=False)  # type: ignore[call-overload]
def _linear_proba(
    buf: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    n_buckets: int,
    lex_keys: npt.NDArray[np.uint64],
    lex_vals: npt.NDArray[np.float32],
    lex_flags: npt.NDArray[np.uint8],
    lex_filter: npt.NDArray[np.uint64],
    weights: npt.NDArray[np.floating[Any]],
    intercept: npt.NDArray[np.float64],
    proba: npt.NDArray[np.float64],
    tok_uni: npt.NDArray[np.uint64],
    tok_bi: npt.NDArray[np.uint64],
    tok_val: npt.NDArray[np.float64],
    scratch: npt.NDArray[np.uint8],
    scratch1: npt.NDArray[np.uint8],
    txt: npt.NDArray[np.uint8],
    txt_off: npt.NDArray[np.int64],
    row: npt.NDArray[np.int32],
    srt: npt.NDArray[np.int32],
    z: npt.NDArray[np.float64],
) -> None:
    """Softmax of (features x ``weights`` + ``intercept``) per text, without building CSR rows.

    Adds exactly what the CSR path (:func:`featurize`, then a sparse
    product) adds, in the same order: intercept, hashed features by
    increasing id (each once, times 1.0), then the dense features. Floating
    point addition is not associative, so the order is kept.
    """
    n_docs = offsets.shape[0] - 1
    n_classes = weights.shape[1]
    for d in range(n_docs):
        ntok = _tokenize_doc(
            buf,
            offsets[d],
            offsets[d + 1],
            lex_keys,
            lex_vals,
            lex_flags,
            lex_filter,
            tok_uni,
            tok_bi,
            tok_val,
            scratch,
            scratch1,
            False,
            txt,
            txt_off,
        )
        m, pos, neg = _doc_features(tok_uni, tok_bi, tok_val, ntok, n_buckets, row, srt)
        if n_classes == 3:
            # the shipped model: three accumulators in registers, not in z
            z0 = intercept[0]
            z1 = intercept[1]
            z2 = intercept[2]
            for a in range(m):
                f = row[a]
                z0 += 1.0 * weights[f, 0]
                z1 += 1.0 * weights[f, 1]
                z2 += 1.0 * weights[f, 2]
            z[0] = z0
            z[1] = z1
            z[2] = z2
        else:
            for c in range(n_classes):
                z[c] = intercept[c]
            for a in range(m):
                f = row[a]
                for c in range(n_classes):
                    z[c] += 1.0 * weights[f, c]
        d0, d1, d2 = _dense(pos, neg)
        for c in range(n_classes):
            z[c] += d0 * weights[n_buckets, c]
        for c in range(n_classes):
            z[c] += d1 * weights[n_buckets + 1, c]
        for c in range(n_classes):
            z[c] += d2 * weights[n_buckets + 2, c]
        # max-shifted softmax, as scikit-learn's, so large logits cannot overflow
        mx = z[0]
        for c in range(1, n_classes):
            mx = max(mx, z[c])
        s = 0.0
        for c in range(n_classes):
            # exp(0) is exactly 1: one libm call fewer per text
            z[c] = math.exp(z[c] - mx) if z[c] != mx else 1.0
            s += z[c]
        for c in range(n_classes):
            proba[d, c] = z[c] / s


def _csr_capacity(off: npt.NDArray[np.int64]) -> int:
    # Every token needs at least one byte and yields at most two features.
    return int(2 * np.minimum(np.diff(off), MAX_TOKENS).sum()) + N_DENSE * (len(off) - 1)


def featurize(
    texts: Sequence[str], lexicon: Lexicon, n_buckets: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    """CSR ``(indptr, indices, data)`` of shape ``(len(texts), n_buckets + N_DENSE)``.

    >>> indptr, indices, data = featurize(["good", ""], build_lexicon(), 1 << 10)
    >>> indptr.tolist(), indices[-3:].tolist()
    ([0, 4, 7], [1024, 1025, 1026])
    """
    buf, off = encode_batch(texts)
    n = len(texts)
    cap = _csr_capacity(off)
    indptr = np.empty(n + 1, dtype=np.int64)
    indices = np.empty(cap, dtype=np.int32)
    data = np.empty(cap, dtype=np.float64)
    _featurize(
        buf,
        off,
        n_buckets,
        lexicon.keys,
        lexicon.values,
        lexicon.flags,
        lexicon.filter,
        indptr,
        indices,
        data,
    )
    nnz = int(indptr[-1])
    return indptr, indices[:nnz], data[:nnz]


def linear_proba(
    texts: Sequence[str],
    lexicon: Lexicon,
    n_buckets: int,
    weights: npt.NDArray[np.floating[Any]],
    intercept: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Softmax of ``featurize(texts) @ weights + intercept``, bit for bit, without the matrix.

    ``weights`` is ``(n_buckets + N_DENSE, n_classes)``, C-contiguous.

    >>> w = np.zeros((1024 + N_DENSE, 3), dtype=np.float32)
    >>> linear_proba(["good"], build_lexicon(), 1024, w, np.zeros(3)).round(3).tolist()
    [[0.333, 0.333, 0.333]]
    """
    buf, off = _encode_spans(texts)
    n_classes = weights.shape[1]
    proba = np.empty((len(texts), n_classes), dtype=np.float64)
    _linear_proba(
        buf,
        off,
        n_buckets,
        lexicon.keys,
        lexicon.values,
        lexicon.flags,
        lexicon.filter,
        weights,
        intercept,
        proba,
        np.empty(MAX_TOKENS, dtype=np.uint64),
        np.empty(MAX_TOKENS, dtype=np.uint64),
        np.empty(MAX_TOKENS, dtype=np.float64),
        np.empty(MAX_TOKEN_BYTES + 8, dtype=np.uint8),
        np.empty(MAX_TOKEN_BYTES + 8, dtype=np.uint8),
        np.empty(0, dtype=np.uint8),
        np.empty(1, dtype=np.int64),
        np.empty(2 * MAX_TOKENS, dtype=np.int32),
        np.empty(2 * MAX_TOKENS, dtype=np.int32),
        np.empty(n_classes, dtype=np.float64),
    )
    return proba


@numba.njit(cache=True, nogil=True)
def _tokens(
    buf: npt.NDArray[np.uint8],
    lex_keys: npt.NDArray[np.uint64],
    lex_vals: npt.NDArray[np.float32],
    lex_flags: npt.NDArray[np.uint8],
    lex_filter: npt.NDArray[np.uint64],
    txt: npt.NDArray[np.uint8],
    txt_off: npt.NDArray[np.int64],
) -> int:
    tok_uni = np.empty(MAX_TOKENS, dtype=np.uint64)
    tok_bi = np.empty(MAX_TOKENS, dtype=np.uint64)
    tok_val = np.empty(MAX_TOKENS, dtype=np.float64)
    scratch = np.empty(MAX_TOKEN_BYTES + 8, dtype=np.uint8)
    scratch1 = np.empty(MAX_TOKEN_BYTES + 8, dtype=np.uint8)
    return _tokenize_doc(
        buf,
        0,
        buf.shape[0],
        lex_keys,
        lex_vals,
        lex_flags,
        lex_filter,
        tok_uni,
        tok_bi,
        tok_val,
        scratch,
        scratch1,
        True,
        txt,
        txt_off,
    )


def tokens(text: str, lexicon: Lexicon) -> list[str]:
    """The normalised tokens the model sees for ``text`` (bigrams not shown)."""
    buf, _ = encode_batch([text])
    txt = np.empty(MAX_TOKENS * (MAX_TOKEN_BYTES + 8), dtype=np.uint8)
    txt_off = np.zeros(MAX_TOKENS + 1, dtype=np.int64)
    ntok = _tokens(buf, lexicon.keys, lexicon.values, lexicon.flags, lexicon.filter, txt, txt_off)
    return [bytes(txt[txt_off[t] : txt_off[t + 1]]).decode("utf-8", "replace") for t in range(ntok)]
