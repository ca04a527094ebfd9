"""The jitter buffer (pure): sample packets in, whole ordered chunks out, gaps and overlaps named.

    buf = JitterBuffer(chunk_samples=500, n_leads=12)
    overlaps = buf.push(first_index, samples, received_time)      # (n, leads) int16
    chunks, gaps = buf.release(deadline_index)                     # in slot order, never reordered

Samples are placed by their device sample index into fixed slots of `chunk_samples` (slot k
holds samples [k*N, (k+1)*N)). A slot is released as soon as it is complete, or once its last
sample is past the deadline (the connector maps "now - jitter_buffer_s" to a sample index with
the device clock estimate); a slot released with holes carries MISSING_SAMPLE (-32768, WFDB's
invalid-sample value) there and the holes are reported as gaps. Slots are released strictly
in order: a complete slot waits behind an incomplete earlier one. Samples that arrive for a
released slot, or a second time, are overlaps: dropped and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hub.render.sampled_data import MISSING_SAMPLE


@dataclass(frozen=True)
class Chunk:
    slot: int
    first_index: int
    samples: np.ndarray  # (n, leads) int16, MISSING_SAMPLE where lost
    missing: int  # samples per lead that are MISSING_SAMPLE
    received_time: float  # arrival of the latest packet that contributed


@dataclass(frozen=True)
class Gap:
    first_index: int
    n_samples: int


@dataclass(frozen=True)
class Overlap:
    first_index: int
    n_samples: int


@dataclass
class _Slot:
    data: np.ndarray
    present: np.ndarray
    received_time: float = 0.0


@dataclass
class JitterBuffer:
    chunk_samples: int
    n_leads: int
    slots: dict[int, _Slot] = field(default_factory=dict)
    start_index: int | None = None  # first sample index of the stream
    next_slot: int | None = None
    released_upto: int = 0  # sample index (exclusive) released so far
    highest_index: int = -1
    released_any: bool = False  # until the first release, an earlier packet may still move the stream start

    @property
    def held_samples(self) -> int:
        return sum(int(s.present.sum()) for s in self.slots.values())

    def push(self, first_index: int, samples: np.ndarray, received_time: float) -> list[Overlap]:
        n = int(samples.shape[0])
        if self.start_index is None or (first_index < self.start_index and not self.released_any):
            self.start_index = first_index
            self.next_slot = first_index // self.chunk_samples
            self.released_upto = first_index
        overlaps: list[Overlap] = []
        lo = first_index
        if lo < self.released_upto:  # already released: too late or a resend
            cut = min(n, self.released_upto - lo)
            overlaps.append(Overlap(lo, cut))
            lo += cut
        index = lo
        while index < first_index + n:
            slot_no = index // self.chunk_samples
            slot_start = slot_no * self.chunk_samples
            end = min(first_index + n, slot_start + self.chunk_samples)
            slot = self.slots.get(slot_no)
            if slot is None:
                slot = self.slots[slot_no] = _Slot(
                    np.full((self.chunk_samples, self.n_leads), MISSING_SAMPLE, dtype=np.int16),
                    np.zeros(self.chunk_samples, dtype=bool))
            a, b = index - slot_start, end - slot_start
            dup = slot.present[a:b]
            if dup.any():
                overlaps.append(Overlap(index + int(np.argmax(dup)), int(dup.sum())))
            fresh = ~dup
            slot.data[a:b][fresh] = samples[index - first_index:end - first_index][fresh]
            slot.present[a:b] = True
            slot.received_time = max(slot.received_time, received_time)
            index = end
        self.highest_index = max(self.highest_index, first_index + n - 1)
        return overlaps

    def _slot_bounds(self, slot_no: int) -> tuple[int, int]:
        start = slot_no * self.chunk_samples
        return max(start, self.start_index or 0), start + self.chunk_samples

    def release(self, deadline_index: float) -> tuple[list[Chunk], list[Gap]]:
        """Release complete slots, and slots whose last sample is before `deadline_index`."""
        chunks: list[Chunk] = []
        gaps: list[Gap] = []
        while self.next_slot is not None:
            slot_no = self.next_slot
            lo, hi = self._slot_bounds(slot_no)
            slot = self.slots.get(slot_no)
            offset = lo - slot_no * self.chunk_samples
            complete = slot is not None and bool(slot.present[offset:].all())
            if not complete and hi > deadline_index:
                break
            if slot is None:
                if self.highest_index < hi:  # nothing after it yet: the device is silent, not lossy
                    break
                _add_gap(gaps, lo, hi - lo)
            else:
                present = slot.present[offset:]
                missing = int((~present).sum())
                for start, length in _runs(~present):
                    _add_gap(gaps, lo + start, length)
                chunks.append(Chunk(slot_no, lo, slot.data[offset:], missing, slot.received_time))
                del self.slots[slot_no]
            self.released_upto = hi
            self.released_any = True
            self.next_slot = slot_no + 1
        return chunks, gaps


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    if not mask.any():
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _add_gap(gaps: list[Gap], start: int, length: int) -> None:
    if gaps and gaps[-1].first_index + gaps[-1].n_samples == start:
        gaps[-1] = Gap(gaps[-1].first_index, gaps[-1].n_samples + length)
    else:
        gaps.append(Gap(start, length))
