"""Fuzz the HL7 v2 parser and decoders (connectors/hl7: message, decode, pcd01, pcd04, adt).

Inputs: the real IHE PCD samples in ../shared/data/hl7v2 with byte-level mutations, and messages
assembled from random segments/fields behind a valid MSH. Property: decode_frame returns events or
raises DecodeError (Hl7Error) with a specific reason and an ACK code AE/AR: nothing else, no hang.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_mutations import EXAMPLES, assert_clear, budget, mutated
from hypothesis import given
from hypothesis import strategies as st

from connectors.hl7.common import DecodeContext
from connectors.hl7.decode import decode_frame
from connectors.hl7.errors import Hl7Error
from connectors.hl7.inventory import DeviceDirectory
from hub.errors import DecodeError
from hub.events import Event
from hub.rules.load import load_rules

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [p.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
           for p in sorted((ROOT.parent / "shared" / "data" / "hl7v2").glob("*.hl7"))]
CONTEXT = DecodeContext(directory=DeviceDirectory(load_rules(ROOT / "rules")), received_time=1_800_000_000.0)
HEADERS = [
    b"MSH|^~\\&|ACME|GW|HUB|HUB|20261121100000+0000||ORU^R01^ORU_R01|MSG1|P|2.6|||AL|NE||8859/1",
    b"MSH|^~\\&|PUMP|GW|HUB|HUB|20261121100000||ORU^R40^ORU_R40|MSG2|P|2.6",
    b"MSH|^~\\&|PUMP|GW|HUB|HUB|20261121100000||ORU^R42|MSG3|P|2.6",
    b"MSH|^~\\&|ADT|HIS|HUB|HUB|20261121100000||ADT^A01|MSG4|P|2.5",
    b"MSH|^~\\&|ADT|HIS|HUB|HUB|20261121100000||ADT^A03|MSG5|P|2.5",
]
SEGMENT_IDS = ["PID", "PV1", "OBR", "OBX", "EVN", "NTE", "PRT", "ORC", "ZZZ", "MSH", "ERR", "MSA"]
FIELD = st.one_of(
    st.text(alphabet="0123456789.-+^&~ABCMDCHmgMSxyzT_ ", max_size=24),
    st.sampled_from(["NM", "ST", "CWE", "CE", "NA", "TX", "F", "X", "R", "150456^MDC_PULS_OXIM_SAT_O2^MDC",
                     "262688^MDC_DIM_PERCENT^MDC", "20261121100000", "20261121100000+0100", "99999999999999",
                     "1.0.1.1", "^^^^", "0600dc7500010001^EUI-64", "MON-01", "ICU1^BED01", "196670^MDC_EVT_LO^MDC"]),
)
SEGMENT = st.builds(lambda sid, fields: "|".join([sid, *fields]).encode("latin-1"),
                    st.sampled_from(SEGMENT_IDS), st.lists(FIELD, max_size=20))
BUILT = st.builds(lambda head, segs: b"\r".join([head, *segs]) + b"\r",
                  st.sampled_from(HEADERS), st.lists(SEGMENT, max_size=12))


def check_decode(frame: bytes) -> None:
    try:
        events = decode_frame(frame, CONTEXT)
    except DecodeError as exc:
        assert_clear(exc.reason)
        if isinstance(exc, Hl7Error):
            assert exc.ack_code in {"AE", "AR"}
        return
    assert all(isinstance(e, Event) for e in events)


def test_samples_are_present():
    assert len(SAMPLES) >= 6


@budget(EXAMPLES)
@given(frame=mutated(SAMPLES))
def test_mutated_samples_decode_or_reject_clearly(frame):
    check_decode(frame)


@budget(EXAMPLES)
@given(frame=BUILT)
def test_random_segments_decode_or_reject_clearly(frame):
    check_decode(frame)


@budget(EXAMPLES // 3)
@given(frame=st.binary(max_size=400))
def test_arbitrary_bytes_reject_clearly(frame):
    check_decode(frame)
