"""Shared by the fuzz targets: the input budget and a byte-mutation strategy over real samples.

DEVSYNC_FUZZ_EXAMPLES sets the inputs per target (default: a few thousand in `make test`;
the nightly run uses 100000). Slow targets (ECG files) take a fraction of it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("DEVSYNC_FUZZ_EXAMPLES", "400"))


def budget(examples: int = EXAMPLES) -> settings:
    """Hypothesis settings for one target; hangs are caught by the pytest-timeout on each test."""
    return settings(
        max_examples=max(1, examples),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**31), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 2**31), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 2**31), st.integers(1, 256)),
    st.tuples(st.just("truncate"), st.integers(0, 2**31), st.just(0)),
    st.tuples(st.just("repeat"), st.integers(0, 2**31), st.integers(1, 512)),
    st.tuples(st.just("special"), st.integers(0, 2**31),
              st.sampled_from([b"\x00", b"\xff", b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\x0b", b"\x1c",
                               b"<", b">", b"\"", b":", b"-", b"9" * 20, b"-1", b"1e308", b"NaN", b"\xef\xbb\xbf"])),
)


def apply_mutations(data: bytes, mutations: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in mutations:
        at = pos % (len(buf) + 1)
        if kind == "flip" and buf:
            buf[at % len(buf)] ^= arg
        elif kind == "insert":
            buf[at:at] = arg
        elif kind == "delete":
            del buf[at:at + arg]
        elif kind == "truncate":
            del buf[at:]
        elif kind == "repeat":
            buf[at:at] = buf[at:at + arg]
        elif kind == "special":
            buf[at:at + len(arg)] = arg
    return bytes(buf)


def mutated(samples: list[bytes], max_mutations: int = 8) -> st.SearchStrategy[bytes]:
    """A real sample with 0..max_mutations byte-level mutations applied."""
    return st.builds(apply_mutations, st.sampled_from(samples), st.lists(_MUTATION, max_size=max_mutations))


def assert_clear(message: str) -> None:
    """A rejection must say something specific: non-empty, not just an exception class name or repr."""
    text = message.strip()
    assert text, "empty rejection message"
    assert len(text) >= 10, f"rejection message too vague: {text!r}"
    assert not text.startswith("Traceback"), text
