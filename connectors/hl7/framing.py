"""MLLP framing: <VT> message <FS><CR> blocks out of a TCP byte stream (pure, no I/O).

`MllpDeframer.feed(data)` takes whatever one read returned (a frame may arrive split across
any number of reads, or many frames in one read) and returns, in stream order, complete frames
(bytes without the framing) and `FramingProblem`s:

- data outside a block (bytes before a start block): reported once per run of such bytes, when
  the run ends (at the next start or end block); the deframer then resyncs on the next start block;
- oversized: a block larger than `max_frame_bytes` is discarded up to its end block and reported
  with its size (only the first bytes are kept, to address the negative ACK);
- unterminated: a start block arrived inside a block; the partial block is reported and the new
  one is read.
CR/LF/blanks between blocks are ignored. The stream carries on after every problem.
"""

from __future__ import annotations

from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
HEAD_BYTES = 4096  # kept from a bad block so the NAK can carry its MSH-10
_BLANK = b"\r\n \t"


@dataclass(frozen=True)
class FramingProblem:
    kind: str  # "outside-block" | "oversized" | "unterminated"
    reason: str
    head: bytes
    size: int


def frame_message(message: bytes) -> bytes:
    return START_BLOCK + message + END_BLOCK + CARRIAGE_RETURN


class MllpDeframer:
    def __init__(self, max_frame_bytes: int):
        self.max_frame_bytes = max_frame_bytes
        self._in_block = False
        self._block = bytearray()
        self._block_size = 0
        self._oversized = False
        self._junk = bytearray()
        self._junk_size = 0

    @property
    def pending_bytes(self) -> int:
        return self._block_size + self._junk_size

    def feed(self, data: bytes) -> list[bytes | FramingProblem]:
        out: list[bytes | FramingProblem] = []
        i, n = 0, len(data)
        while i < n:
            i = self._inside(data, i, out) if self._in_block else self._outside(data, i, out)
        return out

    # --- outside a block: skip blanks, collect junk until a start or end block ---
    def _outside(self, data: bytes, i: int, out: list) -> int:
        sb = data.find(START_BLOCK, i)
        eb = data.find(END_BLOCK, i)
        if eb >= 0 and (sb < 0 or eb < sb):
            self._add_junk(data[i:eb] + END_BLOCK)
            self._flush_junk(out)
            return eb + 1
        if sb >= 0:
            self._add_junk(data[i:sb])
            self._flush_junk(out)
            self._open_block()
            return sb + 1
        self._add_junk(data[i:])
        return len(data)

    def _add_junk(self, chunk: bytes) -> None:
        if not self._junk_size:
            chunk = chunk.lstrip(_BLANK)
        if not chunk:
            return
        room = HEAD_BYTES - len(self._junk)
        if room > 0:
            self._junk += chunk[:room]
        self._junk_size += len(chunk)

    def _flush_junk(self, out: list) -> None:
        if not self._junk_size:
            return
        head = bytes(self._junk)
        if head.strip(_BLANK):
            out.append(
                FramingProblem(
                    "outside-block",
                    f"{self._junk_size} bytes outside an MLLP block (no start block 0x0B before them); "
                    "frame every message as <0x0B> message <0x1C><0x0D>",
                    head,
                    self._junk_size,
                )
            )
        self._junk.clear()
        self._junk_size = 0

    # --- inside a block: collect until the end block ---
    def _open_block(self) -> None:
        self._in_block = True
        self._block.clear()
        self._block_size = 0
        self._oversized = False

    def _inside(self, data: bytes, i: int, out: list) -> int:
        eb = data.find(END_BLOCK, i)
        sb = data.find(START_BLOCK, i, eb if eb >= 0 else len(data))
        if sb >= 0:
            self._append(data[i:sb])
            out.append(
                FramingProblem(
                    "unterminated",
                    f"block of {self._block_size} bytes has no end block 0x1C before the next start block 0x0B",
                    bytes(self._block[:HEAD_BYTES]),
                    self._block_size,
                )
            )
            self._open_block()
            return sb + 1
        if eb < 0:
            self._append(data[i:])
            return len(data)
        if not self._block_size and eb - i <= self.max_frame_bytes:  # fast path: whole frame in this read
            self._in_block = False
            out.append(data[i:eb])
            return eb + 1
        self._append(data[i:eb])
        self._in_block = False
        if self._oversized:
            out.append(
                FramingProblem(
                    "oversized",
                    f"frame of {self._block_size} bytes exceeds the limit of {self.max_frame_bytes} bytes "
                    "(connectors.mllp.max_frame_bytes)",
                    bytes(self._block),
                    self._block_size,
                )
            )
        else:
            out.append(bytes(self._block))
        self._block.clear()
        self._block_size = 0
        return eb + 1

    def _append(self, chunk: bytes) -> None:
        self._block_size += len(chunk)
        if self._oversized:
            return
        if self._block_size > self.max_frame_bytes:
            self._oversized = True
            if len(self._block) < HEAD_BYTES:
                self._block += chunk[: HEAD_BYTES - len(self._block)]
            del self._block[HEAD_BYTES:]
            return
        self._block += chunk
