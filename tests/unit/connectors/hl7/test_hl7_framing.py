"""MLLP framing: frames out of arbitrary reads, problems reported once, the stream carries on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.hl7.framing import HEAD_BYTES, FramingProblem, MllpDeframer, frame_message

MSG = b"MSH|^~\\&|A|B|||20260101000000||ORU^R01|1|P|2.6\rOBX|1|NM|x\r"


def feed_all(deframer: MllpDeframer, chunks) -> list:
    out = []
    for chunk in chunks:
        out += deframer.feed(chunk)
    return out


def test_one_frame_in_one_read():
    assert MllpDeframer(4096).feed(frame_message(MSG)) == [MSG]


def test_frame_split_byte_by_byte():
    data = frame_message(MSG)
    assert feed_all(MllpDeframer(4096), [data[i : i + 1] for i in range(len(data))]) == [MSG]


def test_many_frames_in_one_read_and_blanks_between():
    data = frame_message(MSG) + b"\r\n" + frame_message(MSG + b"X") + frame_message(MSG)
    assert MllpDeframer(4096).feed(data) == [MSG, MSG + b"X", MSG]


@pytest.mark.parametrize("cut", [1, 5, len(MSG) // 2, len(MSG) + 1, len(MSG) + 2])
def test_frame_split_anywhere(cut):
    data = frame_message(MSG) * 2
    assert feed_all(MllpDeframer(4096), [data[:cut], data[cut:]]) == [MSG, MSG]


def test_data_before_start_block_is_reported_once_then_resync():
    junk = b"MSH|^~\\&|X|Y|||20260101||ORU^R01|JUNK1|P|2.6\r"
    out = feed_all(MllpDeframer(4096), [junk[:10], junk[10:] + b"\x1c\r", frame_message(MSG)])
    assert len(out) == 2
    problem, frame = out
    assert isinstance(problem, FramingProblem) and problem.kind == "outside-block"
    assert problem.head.startswith(b"MSH|") and problem.size == len(junk) + 1
    assert frame == MSG


def test_junk_reported_when_the_next_start_block_arrives():
    out = MllpDeframer(4096).feed(b"hello" + frame_message(MSG))
    assert [type(x) for x in out] == [FramingProblem, bytes]
    assert "5 bytes outside an MLLP block" in out[0].reason


def test_oversized_frame_discarded_up_to_its_end_block():
    big = b"MSH|^~\\&|A|B|||20260101||ORU^R01|BIG|P|2.6\r" + b"OBX|" + b"9" * 10_000 + b"\r"
    deframer = MllpDeframer(2048)
    data = frame_message(big) + frame_message(MSG)
    out = feed_all(deframer, [data[i : i + 700] for i in range(0, len(data), 700)])
    assert len(out) == 2
    assert out[0].kind == "oversized" and out[0].size == len(big)
    assert out[0].head.startswith(b"MSH|") and len(out[0].head) <= HEAD_BYTES
    assert "exceeds the limit of 2048 bytes" in out[0].reason
    assert out[1] == MSG
    assert deframer.pending_bytes == 0


def test_start_block_inside_a_block_reports_the_partial_one():
    out = MllpDeframer(4096).feed(b"\x0bMSH|partial" + frame_message(MSG))
    assert out[0].kind == "unterminated" and out[0].head == b"MSH|partial"
    assert out[1] == MSG


@pytest.mark.parametrize("junk", [b"\x1c\r", b"x\x1c\r"])
def test_stray_end_block_is_not_silent(junk):
    out = MllpDeframer(4096).feed(junk + frame_message(MSG))
    assert isinstance(out[0], FramingProblem) and out[0].kind == "outside-block"
    assert out[1] == MSG


def test_pending_bytes_counts_an_incomplete_frame():
    deframer = MllpDeframer(4096)
    assert deframer.feed(b"\x0bMSH|abc") == []
    assert deframer.pending_bytes == 7

_PIECES = st.lists(
    st.one_of(
        st.binary(max_size=100).map(lambda b: frame_message(b.replace(b"\x0b", b"").replace(b"\x1c", b""))),
        st.sampled_from([b"junk", b"\r\n", b"\x1c\r", b"\x0bcut"]),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(pieces=_PIECES, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20))
def test_read_boundaries_never_change_what_comes_out(pieces, cuts):
    """Frames and problems are the same whatever the reads look like (property)."""
    stream = b"".join(pieces)
    whole = MllpDeframer(64).feed(stream)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert feed_all(MllpDeframer(64), chunks) == whole
