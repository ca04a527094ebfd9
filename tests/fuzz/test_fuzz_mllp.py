"""Fuzz the MLLP deframer (connectors/hl7/framing.py) with arbitrary byte streams cut at arbitrary points.

Properties: never raises; frames never carry framing bytes; every problem has a specific reason;
memory kept per connection is bounded whatever the stream; and well-framed messages mixed with junk
and oversized blocks come out intact, in order, whatever the read boundaries.
"""

from __future__ import annotations

import pytest
from fuzz_mutations import EXAMPLES, assert_clear, budget
from hypothesis import given
from hypothesis import strategies as st

from connectors.hl7.framing import END_BLOCK, HEAD_BYTES, START_BLOCK, FramingProblem, MllpDeframer, frame_message

pytestmark = pytest.mark.timeout(600)

STREAM_BYTES = st.lists(
    st.one_of(st.binary(max_size=64), st.sampled_from([START_BLOCK, END_BLOCK, b"\r", b"\n", END_BLOCK + b"\r"])),
    max_size=40,
).map(b"".join)
PAYLOAD = st.binary(max_size=300).map(lambda b: b.replace(START_BLOCK, b"").replace(END_BLOCK, b""))
JUNK = st.one_of(st.just(b""), st.just(b"\r\n"), PAYLOAD)


def feed_in_cuts(deframer: MllpDeframer, stream: bytes, cuts: list[int]) -> list:
    out, last = [], 0
    for cut in sorted({c % (len(stream) + 1) for c in cuts}) + [len(stream)]:
        out += deframer.feed(stream[last:cut])
        last = cut
        assert len(deframer._block) <= max(deframer.max_frame_bytes, HEAD_BYTES)
        assert len(deframer._junk) <= HEAD_BYTES
    return out


@budget(EXAMPLES)
@given(stream=STREAM_BYTES, cuts=st.lists(st.integers(0, 10_000), max_size=12), limit=st.integers(1, 512))
def test_any_stream_gives_frames_or_specific_problems(stream, cuts, limit):
    for item in feed_in_cuts(MllpDeframer(limit), stream, cuts):
        if isinstance(item, FramingProblem):
            assert item.kind in {"outside-block", "oversized", "unterminated"}
            assert_clear(item.reason)
            assert item.size >= len(item.head)
        else:
            assert START_BLOCK not in item and END_BLOCK not in item
            assert len(item) <= limit


@budget(EXAMPLES)
@given(parts=st.lists(st.tuples(JUNK, PAYLOAD), max_size=10), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       limit=st.integers(1, 200))
def test_framed_messages_survive_junk_and_any_read_boundaries(parts, cuts, limit):
    stream = b"".join(junk + frame_message(payload) for junk, payload in parts)
    out = feed_in_cuts(MllpDeframer(limit), stream, cuts)
    frames = [item for item in out if isinstance(item, bytes)]
    oversized = [item for item in out if isinstance(item, FramingProblem) and item.kind == "oversized"]
    assert frames == [payload for _, payload in parts if len(payload) <= limit]
    assert [p.size for p in oversized] == [len(payload) for _, payload in parts if len(payload) > limit]
    assert not [item for item in out if isinstance(item, FramingProblem) and item.kind == "unterminated"]
