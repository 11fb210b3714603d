"""IdSet against a Python set: duplicates in arrival order, growth, checkpoint round trip."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.idset import IdSet


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 50), max_size=300), max_size=8))
def test_idset_behaves_as_a_set(batches: list[list[int]]) -> None:
    ids, ref = IdSet(), set()
    for batch in batches:
        h = np.array(batch, dtype=np.uint64)
        probe = ids.contains(h)
        assert probe.tolist() == [x in ref for x in batch]
        want = []
        for x in batch:
            want.append(x in ref)
            ref.add(x)
        assert ids.add(h).tolist() == want
        assert len(ids) == len(ref)
        assert 2 * len(ids) <= len(ids.table)  # load factor at most 1/2
    back = IdSet.from_text(ids.to_text())
    everything = np.array(sorted(ref), dtype=np.uint64)
    assert len(back) == len(ref) and back.contains(everything).all()
