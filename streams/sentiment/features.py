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
from dataclasses import dataclass

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
    """

    keys: npt.NDArray[np.uint64]
    values: npt.NDArray[np.float32]
    flags: npt.NDArray[np.uint8]

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
    enc = [t.encode("utf-8", "surrogatepass") for t in texts]
    off = np.zeros(len(enc) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=len(enc)), out=off[1:])
    return np.frombuffer(b"".join(enc), dtype=np.uint8), off


# ---------------------------------------------------------------- kernels

_U_OFFSET = np.uint64(_FNV_OFFSET)
_U_PRIME = np.uint64(_FNV_PRIME)


@numba.njit(cache=True, nogil=True)
def _fnv_bytes(h: np.uint64, buf: npt.NDArray[np.uint8], n: int) -> np.uint64:
    for i in range(n):
        h = (h ^ np.uint64(buf[i])) * _U_PRIME
    return h


@numba.njit(cache=True, nogil=True)
def _lookup(keys: npt.NDArray[np.uint64], h: np.uint64) -> int:
    if h == np.uint64(0):
        h = np.uint64(1)
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
        return (0x61 <= cp <= 0x7A) or (0x41 <= cp <= 0x5A) or (0x30 <= cp <= 0x39) or cp == 0x27
    if _is_apostrophe(cp):
        return True
    return not (_is_separator_cp(cp) or _is_emoji(cp) or _is_ignorable(cp))


@numba.njit(cache=True, nogil=True)
def _starts(buf: npt.NDArray[np.uint8], i: int, j: int, lit: bytes) -> bool:
    n = len(lit)
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
def _tokenize_doc(
    buf: npt.NDArray[np.uint8],
    start: int,
    end: int,
    lex_keys: npt.NDArray[np.uint64],
    lex_vals: npt.NDArray[np.float32],
    lex_flags: npt.NDArray[np.uint8],
    sp_buf: npt.NDArray[np.uint8],
    sp_off: npt.NDArray[np.int64],
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

    With ``want_text`` the normalised token strings go to ``txt`` (offsets in
    ``txt_off``) so :func:`tokens` can show what the model sees.
    """
    ntok = 0
    neg_left = 0  # words still inside a negation scope
    has_prev = False
    prev_h = _U_OFFSET  # FNV state after the previous word token (for bigrams)
    i = start
    limit = tok_uni.shape[0] - 4  # room for a token and its two markers
    while i < end and ntok < limit:
        if buf[i] <= 0x20:
            i += 1
            continue
        j = i
        while j < end and buf[j] > 0x20:
            j += 1
        # --- whole-chunk cases: URL, emoticon
        kind = -1  # -1: scan the chunk; otherwise a token is in scratch
        n = 0
        val = 0.0
        if (
            _starts(buf, i, j, b"http://")
            or _starts(buf, i, j, b"https://")
            or _starts(buf, i, j, b"www.")
        ):
            kind = _SP_URL
        elif j - i <= 10:
            punct = False
            for t in range(i, j):
                c = buf[t]
                if c < 0x80 and not (
                    (0x61 <= c <= 0x7A) or (0x41 <= c <= 0x5A) or (0x30 <= c <= 0x39) or c == 0x27
                ):
                    punct = True
            if punct:
                h = _U_OFFSET
                for t in range(i, j):
                    c = buf[t]
                    if 0x41 <= c <= 0x5A:
                        c += 32
                    h = (h ^ np.uint64(c)) * _U_PRIME
                slot = _lookup(lex_keys, h)
                if slot >= 0 and (lex_flags[slot] & 2) != 0:
                    n = j - i
                    for t in range(n):
                        c = buf[i + t]
                        if 0x41 <= c <= 0x5A:
                            c += 32
                        scratch[t] = c
                    val = float(lex_vals[slot])
                    kind = 100  # emoticon
        if kind >= 0:
            if kind == _SP_URL:
                n = sp_off[kind + 1] - sp_off[kind]
                for t in range(n):
                    scratch[t] = sp_buf[sp_off[kind] + t]
            if neg_left > 0 and kind == 100:
                val *= -0.74
            ntok = _emit(
                scratch,
                n,
                _KIND_WORD,
                neg_left > 0 and kind == 100,
                val,
                has_prev,
                prev_h,
                sp_buf,
                sp_off,
                tok_uni,
                tok_bi,
                tok_val,
                ntok,
                want_text,
                txt,
                txt_off,
            )
            prev_h = _fnv_bytes(_U_OFFSET, scratch, n)
            has_prev = True
            if neg_left > 0:
                neg_left -= 1
            i = j
            continue
        # --- scan inside the chunk
        k = i
        while k < j and ntok < limit:
            cp, L = _decode(buf, k, j)
            if cp == 0x40 and k + 1 < j and _is_word_cp(int(buf[k + 1])):  # @handle
                k += 1
                while k < j and (_is_word_cp(int(buf[k])) or buf[k] == 0x5F):
                    k += 1
                n = _special(scratch, _SP_USER, sp_buf, sp_off)
                ntok = _emit(
                    scratch,
                    n,
                    _KIND_WORD,
                    False,
                    0.0,
                    has_prev,
                    prev_h,
                    sp_buf,
                    sp_off,
                    tok_uni,
                    tok_bi,
                    tok_val,
                    ntok,
                    want_text,
                    txt,
                    txt_off,
                )
                prev_h = _fnv_bytes(_U_OFFSET, scratch, n)
                has_prev = True
                continue
            if cp == 0x21 or cp == 0x3F:  # ! ?  (a run counts once)
                while k < j and buf[k] == cp:
                    k += 1
                n = _special(scratch, _SP_EXCL if cp == 0x21 else _SP_QUES, sp_buf, sp_off)
                ntok = _emit(
                    scratch,
                    n,
                    _KIND_WORD,
                    False,
                    0.0,
                    has_prev,
                    prev_h,
                    sp_buf,
                    sp_off,
                    tok_uni,
                    tok_bi,
                    tok_val,
                    ntok,
                    want_text,
                    txt,
                    txt_off,
                )
                has_prev = False  # bigrams and negation stop at punctuation
                neg_left = 0
                continue
            if cp == 0x26:  # HTML entity (&amp; &lt; &#39;): markup, not words
                t = k + 1
                while t < j and t < k + 8 and (_is_word_cp(int(buf[t])) or buf[t] == 0x23):
                    t += 1
                if t < j and buf[t] == 0x3B and t > k + 1:
                    k = t + 1
                    continue
            if cp == 0x2E or cp == 0x2C or cp == 0x3B or cp == 0x3A or cp == 0x2026:
                has_prev = False
                neg_left = 0
                k += L
                continue
            if _is_emoji(cp):
                n = L
                for t in range(L):
                    scratch[t] = buf[k + t]
                h = _fnv_bytes(_U_OFFSET, scratch, n)
                slot = _lookup(lex_keys, h)
                val = float(lex_vals[slot]) if slot >= 0 else 0.0
                ntok = _emit(
                    scratch,
                    n,
                    _KIND_WORD,
                    False,
                    val,
                    has_prev,
                    prev_h,
                    sp_buf,
                    sp_off,
                    tok_uni,
                    tok_bi,
                    tok_val,
                    ntok,
                    want_text,
                    txt,
                    txt_off,
                )
                prev_h = h
                has_prev = True
                k += L
                continue
            if not _is_word_cp(cp) or _is_apostrophe(cp):
                k += L  # separators, and apostrophes that open a word ('quoted')
                continue
            # --- a word: lower-case, collapse elongation, count case and digits
            n = 0
            n1 = 0
            run = 0
            last = -1
            letters = 0
            uppers = 0
            digits = 0
            elong = False
            while k < j:
                cp, L = _decode(buf, k, j)
                if not _is_word_cp(cp):
                    break
                if _is_apostrophe(cp):
                    c = 0x27
                    if n < MAX_TOKEN_BYTES:
                        scratch[n] = c
                        n += 1
                    if n1 < MAX_TOKEN_BYTES:
                        scratch1[n1] = c
                        n1 += 1
                    last = c
                    run = 1
                    k += L
                    continue
                if cp < 0x80:
                    c = cp
                    if 0x41 <= c <= 0x5A:
                        uppers += 1
                        letters += 1
                        c += 32
                    elif 0x61 <= c <= 0x7A:
                        letters += 1
                    elif 0x30 <= c <= 0x39:
                        digits += 1
                    if c == last:
                        run += 1
                    else:
                        run = 1
                        last = c
                    is_letter = 0x61 <= c <= 0x7A
                    if run <= 2 or not is_letter:
                        if n < MAX_TOKEN_BYTES:
                            scratch[n] = c
                            n += 1
                    else:
                        elong = True
                    if (run == 1 or not is_letter) and n1 < MAX_TOKEN_BYTES:
                        scratch1[n1] = c
                        n1 += 1
                else:
                    letters += 1
                    last = -1
                    run = 0
                    for t in range(L):
                        if n < MAX_TOKEN_BYTES:
                            scratch[n] = buf[k + t]
                            n += 1
                        if n1 < MAX_TOKEN_BYTES:
                            scratch1[n1] = buf[k + t]
                            n1 += 1
                k += L
            while n > 0 and scratch[n - 1] == 0x27:  # trailing apostrophes
                n -= 1
            while n1 > 0 and scratch1[n1 - 1] == 0x27:
                n1 -= 1
            if n == 0:
                continue
            if digits > 0 and letters == 0:
                n = _special(scratch, _SP_NUM, sp_buf, sp_off)
                slot = -1
            else:
                slot = _lookup(lex_keys, _fnv_bytes(_U_OFFSET, scratch, n))
                if elong and (slot < 0 or lex_vals[slot] == 0.0):
                    slot1 = _lookup(lex_keys, _fnv_bytes(_U_OFFSET, scratch1, n1))
                    if slot1 >= 0 and lex_vals[slot1] != 0.0:
                        slot = slot1
                        n = n1
                        for t in range(n1):
                            scratch[t] = scratch1[t]
            negator = slot >= 0 and (lex_flags[slot] & 1) != 0
            if not negator and n >= 3 and scratch[n - 1] == 0x74 and scratch[n - 2] == 0x27:
                negator = scratch[n - 3] == 0x6E  # ...n't
            val = float(lex_vals[slot]) if slot >= 0 else 0.0
            caps = letters >= 3 and uppers == letters
            if caps and val != 0.0:
                val += CAPS_INCR if val > 0 else -CAPS_INCR
            negated = neg_left > 0 and not negator
            if negated:
                val *= N_SCALAR
            ntok = _emit(
                scratch,
                n,
                _KIND_WORD,
                negated,
                val,
                has_prev,
                prev_h,
                sp_buf,
                sp_off,
                tok_uni,
                tok_bi,
                tok_val,
                ntok,
                want_text,
                txt,
                txt_off,
            )
            prev_h = _fnv_bytes(_U_OFFSET, scratch, n)
            has_prev = True
            if neg_left > 0:
                neg_left -= 1
            if negator:
                neg_left = NEG_SCOPE
            if caps:
                m = _special(scratch, _SP_CAPS, sp_buf, sp_off)
                ntok = _emit(
                    scratch,
                    m,
                    _KIND_MARK,
                    False,
                    0.0,
                    False,
                    prev_h,
                    sp_buf,
                    sp_off,
                    tok_uni,
                    tok_bi,
                    tok_val,
                    ntok,
                    want_text,
                    txt,
                    txt_off,
                )
            if elong:
                m = _special(scratch, _SP_ELONG, sp_buf, sp_off)
                ntok = _emit(
                    scratch,
                    m,
                    _KIND_MARK,
                    False,
                    0.0,
                    False,
                    prev_h,
                    sp_buf,
                    sp_off,
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
def _special(
    scratch: npt.NDArray[np.uint8],
    sid: int,
    sp_buf: npt.NDArray[np.uint8],
    sp_off: npt.NDArray[np.int64],
) -> int:
    n = sp_off[sid + 1] - sp_off[sid]
    for t in range(n):
        scratch[t] = sp_buf[sp_off[sid] + t]
    return n


@numba.njit(cache=True, nogil=True)
def _emit(
    scratch: npt.NDArray[np.uint8],
    n: int,
    kind: int,
    negated: bool,
    val: float,
    has_prev: bool,
    prev_h: np.uint64,
    sp_buf: npt.NDArray[np.uint8],
    sp_off: npt.NDArray[np.int64],
    tok_uni: npt.NDArray[np.uint64],
    tok_bi: npt.NDArray[np.uint64],
    tok_val: npt.NDArray[np.float64],
    ntok: int,
    want_text: bool,
    txt: npt.NDArray[np.uint8],
    txt_off: npt.NDArray[np.int64],
) -> int:
    h = _fnv_bytes(_U_OFFSET, scratch, n)
    if negated:
        for t in range(sp_off[_SP_NEG], sp_off[_SP_NEG + 1]):
            h = (h ^ np.uint64(sp_buf[t])) * _U_PRIME
    bi = np.uint64(0)
    if kind == _KIND_WORD and has_prev:
        # hash of "<previous word> <this word>", both without the _NEG mark
        bi = (prev_h ^ np.uint64(0x20)) * _U_PRIME
        bi = _fnv_bytes(bi, scratch, n)
        if bi == np.uint64(0):
            bi = np.uint64(1)
    tok_uni[ntok] = h
    tok_bi[ntok] = bi
    tok_val[ntok] = val
    if want_text:
        p = txt_off[ntok]
        for t in range(n):
            txt[p + t] = scratch[t]
        p += n
        if negated:
            for t in range(sp_off[_SP_NEG], sp_off[_SP_NEG + 1]):
                txt[p] = sp_buf[t]
                p += 1
        txt_off[ntok + 1] = p
    return ntok + 1


@numba.njit(cache=True, nogil=True)
def _featurize(
    buf: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    n_buckets: int,
    lex_keys: npt.NDArray[np.uint64],
    lex_vals: npt.NDArray[np.float32],
    lex_flags: npt.NDArray[np.uint8],
    sp_buf: npt.NDArray[np.uint8],
    sp_off: npt.NDArray[np.int64],
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
    row = np.empty(2 * MAX_TOKENS, dtype=np.int64)
    nb = np.uint64(n_buckets)
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
            sp_buf,
            sp_off,
            tok_uni,
            tok_bi,
            tok_val,
            scratch,
            scratch1,
            False,
            txt,
            txt_off,
        )
        m = 0
        pos = 0.0
        neg = 0.0
        for t in range(ntok):
            row[m] = np.int64(tok_uni[t] % nb)
            m += 1
            if tok_bi[t] != np.uint64(0):
                row[m] = np.int64(tok_bi[t] % nb)
                m += 1
            v = tok_val[t]
            if v > 0:
                pos += v
            else:
                neg += v
        # insertion sort: rows are a few dozen entries, cheaper than np.sort's allocation
        for a in range(1, m):
            x = row[a]
            b = a - 1
            while b >= 0 and row[b] > x:
                row[b + 1] = row[b]
                b -= 1
            row[b + 1] = x
        last = -1
        for a in range(m):
            if row[a] != last:
                indices[p] = row[a]
                data[p] = 1.0
                p += 1
                last = row[a]
        s = pos + neg
        indices[p] = n_buckets
        data[p] = s / math.sqrt(s * s + VADER_ALPHA)
        indices[p + 1] = n_buckets + 1
        data[p + 1] = math.tanh(pos / 4.0)
        indices[p + 2] = n_buckets + 2
        data[p + 2] = math.tanh(neg / 4.0)
        p += N_DENSE
        indptr[d + 1] = p


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
    # Every token needs at least one byte and yields at most two features.
    lens = np.minimum(np.diff(off), MAX_TOKENS)
    cap = int(2 * lens.sum()) + N_DENSE * n
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
        _SP_BUF,
        _SP_OFF,
        indptr,
        indices,
        data,
    )
    nnz = int(indptr[-1])
    return indptr, indices[:nnz], data[:nnz]


def tokens(text: str, lexicon: Lexicon) -> list[str]:
    """The normalised tokens the model sees for ``text`` (bigrams not shown)."""
    buf, off = encode_batch([text])
    tok_uni = np.empty(MAX_TOKENS, dtype=np.uint64)
    tok_bi = np.empty(MAX_TOKENS, dtype=np.uint64)
    tok_val = np.empty(MAX_TOKENS, dtype=np.float64)
    scratch = np.empty(MAX_TOKEN_BYTES + 8, dtype=np.uint8)
    scratch1 = np.empty(MAX_TOKEN_BYTES + 8, dtype=np.uint8)
    txt = np.empty(MAX_TOKENS * (MAX_TOKEN_BYTES + 8), dtype=np.uint8)
    txt_off = np.zeros(MAX_TOKENS + 1, dtype=np.int64)
    ntok = _tokenize_doc(
        buf,
        0,
        int(off[1]),
        lexicon.keys,
        lexicon.values,
        lexicon.flags,
        _SP_BUF,
        _SP_OFF,
        tok_uni,
        tok_bi,
        tok_val,
        scratch,
        scratch1,
        True,
        txt,
        txt_off,
    )
    return [bytes(txt[txt_off[t] : txt_off[t + 1]]).decode("utf-8", "replace") for t in range(ntok)]
