"""The jitter buffer: ordered chunks, gaps and overlaps from sample packets (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.ecg_stream.jitter import Gap, JitterBuffer, Overlap
from hub.render.sampled_data import MISSING_SAMPLE

N, LEADS, PER = 100, 3, 20  # chunk samples, leads, samples per packet


def packet(first: int, n: int = PER) -> np.ndarray:
    idx = np.arange(first, first + n, dtype=np.int16)
    return np.column_stack([idx, -idx, idx * 2]).astype(np.int16)


def feed(buf: JitterBuffer, firsts, received: float = 0.0):
    overlaps = []
    for first in firsts:
        overlaps += buf.push(first, packet(first), received)
    return overlaps


def test_a_complete_chunk_is_released_at_once_in_order():
    buf = JitterBuffer(N, LEADS)
    feed(buf, range(0, 200, PER))
    chunks, gaps = buf.release(deadline_index=-1)  # nothing is past its deadline
    assert [c.slot for c in chunks] == [0, 1] and gaps == []
    assert np.array_equal(chunks[1].samples[:, 0], np.arange(100, 200))
    assert chunks[0].missing == 0


def test_packets_out_of_order_within_the_buffer_are_put_back_in_place():
    buf = JitterBuffer(N, LEADS)
    feed(buf, [0, 40, 20, 80, 60])
    [chunk], gaps = buf.release(-1)
    assert gaps == [] and np.array_equal(chunk.samples[:, 1], -np.arange(100))


def test_a_lost_packet_waits_for_the_deadline_then_is_a_gap():
    buf = JitterBuffer(N, LEADS)
    feed(buf, [0, 20, 60, 80, 100, 120, 140, 160, 180])  # 40..59 lost
    assert buf.release(deadline_index=99) == ([], [])  # slot 0 not yet past its deadline: later slots wait too
    chunks, gaps = buf.release(deadline_index=100)
    assert [c.slot for c in chunks] == [0, 1]
    assert gaps == [Gap(40, 20)]
    assert chunks[0].missing == 20
    assert (chunks[0].samples[40:60] == MISSING_SAMPLE).all() and (chunks[0].samples[60:] != MISSING_SAMPLE).all()


def test_a_whole_lost_chunk_is_one_gap_and_no_event():
    buf = JitterBuffer(N, LEADS)
    feed(buf, [*range(0, 100, PER), *range(200, 300, PER)])
    chunks, gaps = buf.release(deadline_index=250)
    assert [c.slot for c in chunks] == [0, 2] and gaps == [Gap(100, 100)]


def test_a_silent_device_is_not_a_gap():
    buf = JitterBuffer(N, LEADS)
    feed(buf, range(0, 100, PER))
    chunks, gaps = buf.release(deadline_index=10_000)
    assert [c.slot for c in chunks] == [0] and gaps == []


def test_samples_received_twice_or_after_release_are_overlaps_and_dropped():
    buf = JitterBuffer(N, LEADS)
    assert feed(buf, [0, 20, 20]) == [Overlap(20, 20)]
    feed(buf, [40, 60, 80])
    buf.release(-1)
    assert feed(buf, [80, 100]) == [Overlap(80, 20)]
    [chunk], _ = buf.release(deadline_index=1000)
    assert chunk.first_index == 100 and chunk.missing == 80


def test_a_stream_starting_mid_chunk_starts_its_first_chunk_there():
    buf = JitterBuffer(N, LEADS)
    feed(buf, range(60, 200, PER))
    chunks, gaps = buf.release(-1)
    assert [(c.first_index, len(c.samples)) for c in chunks] == [(60, 40), (100, 100)] and gaps == []


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]])
def test_released_chunks_never_depend_on_arrival_order(order):
    buf = JitterBuffer(N, LEADS)
    feed(buf, [k * PER for k in order])
    [chunk], _ = buf.release(-1)
    assert np.array_equal(chunk.samples, packet(0, 100))
