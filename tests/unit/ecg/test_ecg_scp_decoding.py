"""SCP-ECG decoding stages on hand-built bit streams, and refusals on real files altered."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.ecg.exceptions import EcgFormatError
from connectors.ecg.scp import _DEFAULT_CODES, _huffman_decode, _table, _undifference, read_scp


def encode_default(values: list[int]) -> bytes:
    codes = {value: (bits, code) for _, bits, _, value, code in _DEFAULT_CODES[:-2]}
    bits = ""
    for v in values:
        if v in codes:
            n, code = codes[v]
            bits += format(code, f"0{n}b")
        elif -128 <= v <= 127:
            bits += "1111111110" + format(v & 0xFF, "08b")
        else:
            bits += "1111111111" + format(v & 0xFFFF, "016b")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def test_default_table_has_the_standard_19_codes_and_is_prefix_free():
    assert len(_DEFAULT_CODES) == 19
    words = [format(code, f"0{prefix}b") for prefix, _, _, _, code in _DEFAULT_CODES]
    assert not any(a != b and b.startswith(a) for a in words for b in words)


@pytest.mark.parametrize("values", [[0, 1, -1, 8, -8, 9, -100, 127, -128, 128, 3000, -32768, 0, 0]])
def test_huffman_default_table_round_trip(values):
    assert _huffman_decode(encode_default(values), [_table(_DEFAULT_CODES)], len(values)) == values


def test_second_difference_decoding_restores_the_signal():
    signal = np.array([5, 7, 12, 10, -3, 0, 4, 4, 4], dtype=np.int64)
    d2 = signal.copy()
    d2[2:] = signal[2:] - 2 * signal[1:-1] + signal[:-2]
    np.testing.assert_array_equal(_undifference(d2, 2), signal)
    d1 = np.concatenate(([signal[0]], np.diff(signal)))
    np.testing.assert_array_equal(_undifference(d1, 1), signal)


def test_reference_beat_subtraction_is_refused_clearly(data_dir, tmp_path):
    raw = bytearray((data_dir / "scp/ecgtoolkit_Example.scp").read_bytes())
    section3_body = 329 - 1 + 16  # section 3 starts at byte 329 (1-based) in this file
    raw[section3_body + 1] |= 0x01
    altered = tmp_path / "subtraction.scp"
    altered.write_bytes(bytes(raw))
    with pytest.raises(EcgFormatError, match="reference-beat subtraction"):
        read_scp(altered)


def test_not_scp_is_refused(tmp_path):
    path = tmp_path / "x.scp"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(EcgFormatError, match="SCPECG"):
        read_scp(path)
