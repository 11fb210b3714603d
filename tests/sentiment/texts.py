"""Texts that stress the tokenizer: hostile strings and seeded random mixtures.

Shared by the feature-stability and fast-path tests, so both look at the
same inputs. Deterministic: the same seed gives the same list on every
machine (the pieces are chosen by numpy's PCG64, not by hash order).
"""

from __future__ import annotations

import numpy as np

HOSTILE: list[str] = [
    "",
    " ",
    "\t\n\r ",
    "\x00\x01\x1f",
    "...,,,;;;:::",
    "!!!???!?!?",
    "&amp;&lt;&#39;&;&&&",
    "@",
    "@@@",
    "@_",
    "#",
    "'",
    "''''",
    "’’’",
    "\ud800",
    "\udfff lone low",
    "a\ud800b\udc00c",
    "\ud83d\ude21 escaped pair",
    "\ufffd\ufffd bad",
    "\ufeffbom",
    "😡" * 300,
    "👍🏽❤️‍🔥" * 50,
    "🇺🇸🇬🇧 flags 1️⃣ keycap",
    "a" * 65_536,
    "é" * 32_768,
    "😡 " * 16_384,
    "word " * 13_107,
    "NOT " * 300,
    "x" * 63 + "yyyy" + "z" * 10,
    "A" * 64 + "!",
    "sooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo",
    "loooooove LOOOOOVE gooood baaaad",
    "don't can't WON'T isn’t ain‘t ʼtis",
    "http://x https://y www.z HTTP://Q WwW.",
    ":-( :) <3 :D :'( </3 ;) :P XD",
    "3 33 3.5 1,000 10/10 2nd",
    "RT @united: @JetBlue's #fail!!! …",
    "ﬁne Straße İstanbul ǅ ΣΑΣ",
    "中文字符 日本語 한국어",
    "\u2028\u2029\u00a0\u3000 spaces",
]

_PIECES = [
    *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    *" \t\n\x00",
    *".,;:…!?&#@_-<>()/=*+\"'’‘ʼ",
    "😡", "👍", "🏽", "❤", "\ufe0f", "\u200d", "\u20e3", "🎉", "😂", "🙄",
    "é", "ß", "中", "Ж", "\ufffd", "\ufeff", "\u2019", "\u00d7", "\u00f7", "\u2026",
    "\ud800", "\udfff",
    "http://t.co/x", "www.", "&amp;", "&#39;", ":-(", ":)", "<3", ":D",
    "n't", "not ", "never ", "no ", "soooo", "LOVE", "good", "bad", "hate", "!!!",
    "@acme", "#fail", "RT ", "ooooooo", "AAAAA",
]  # fmt: skip


def random_texts(n: int, seed: int = 20141, max_pieces: int = 40) -> list[str]:
    """``n`` texts of 0..``max_pieces`` random pieces (characters, emoji, markup, words)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(0, max_pieces + 1))
        out.append("".join(_PIECES[int(i)] for i in rng.integers(0, len(_PIECES), k)))
    return out
