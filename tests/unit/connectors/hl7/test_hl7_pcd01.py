"""PCD-01 as the IHE TF defines it: containment, inheritance, flags, identity, strict errors."""

from __future__ import annotations

import pytest

from connectors.hl7.errors import Hl7Error
from hub.events import DataClass, EventKind, Quality

MSH = "MSH|^~\\&|MON_GW^0600dc7500010001^EUI-64|ICU|||20260101120000+0100||ORU^R01^ORU_R01|{cid}|{pid}|2.6"
OBR = "OBR|1|||182777000^monitoring of patient^SCT|||20260101115900"
ROWS = [
    "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X",
    "OBX|2||70686^MDC_DEV_PRESS_BLD_NONINV_VMD^MDC|1.1.0.0|||||||X|||20260101115000",
    "OBX|3||70687^MDC_DEV_PRESS_BLD_NONINV_CHAN^MDC|1.1.1.0|||||||X",
    "OBX|4|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.1.1|120|266016^MDC_DIM_MMHG^MDC|||||R||||||MMEAS^manual-measurement^MDC",
    "OBX|5||4262^MDC_DEV_ECG_VMD^MDC|1.2.0.0|||||||X|||||||ECGMOD^^00c0b70000000003^EUI-64",
    "OBX|6|NM|147842^MDC_ECG_CARD_BEAT_RATE^MDC|1.2.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC||QUES~CAL|||R",
    "OBX|7|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.1|97.5|262688^MDC_DIM_PERCENT^MDC||INV|||W|||20260101115930+0000",
    "OBX|8|ST|184327^MDC_ECG_STAT_RHY^MDC|1.2.1.2|MDC_ECG_SINUS_RHY||||||R",
    "OBX|9|NM|151562^MDC_RESP_RATE^MDC|1.2.1.3|18|264928^MDC_DIM_RESP_PER_MIN^MDC|||||D",
]


def message(rows=ROWS, cid="C1", pid="P", obr=OBR) -> str:
    return "\r".join([MSH.format(cid=cid, pid=pid), "PID|||MRN1^^^H^MR", "PV1||I|ICU1^^BED09", obr, *rows]) + "\r"


def by_code(events):
    return {e.mdc_ref: e for e in events}


def test_values_codes_and_units_as_sent(decode):
    events = by_code(decode(message()))
    sys = events["MDC_PRESS_BLD_NONINV_SYS"]
    assert sys.kind is EventKind.NUMERIC and sys.value_sent == 120.0 and sys.unit_sent == "MDC_DIM_MMHG"
    assert sys.code_sent == "150021" and sys.code_system_sent == "MDC" and sys.mdc_code == 150021
    assert sys.value is None and sys.metric is None  # normalisation is stage 1's job
    rhythm = events["MDC_ECG_STAT_RHY"]
    assert rhythm.kind is EventKind.TEXT and rhythm.text == "MDC_ECG_SINUS_RHY"
    assert "MDC_RESP_RATE" not in events  # OBX-11 D: deleted, not emitted
    assert len(events) == 4


def test_time_inherits_from_vmd_row_then_obr7_with_msh7_offset(decode):
    events = by_code(decode(message()))
    vmd_time = 1_767_264_600.0  # 2026-01-01 11:50:00 +0100 (OBX-14 of the NIBP VMD row)
    assert events["MDC_PRESS_BLD_NONINV_SYS"].device_time == vmd_time
    assert events["MDC_ECG_CARD_BEAT_RATE"].device_time == vmd_time + 540  # OBR-7 11:59:00 +0100
    assert events["MDC_PULS_OXIM_SAT_O2"].device_time == 1_767_268_770.0  # own OBX-14 with +0000
    assert events["MDC_ECG_CARD_BEAT_RATE"].seq == int((vmd_time + 540) * 1000)


def test_equipment_inherits_down_the_hierarchy(decode):
    events = by_code(decode(message()))
    assert events["MDC_PRESS_BLD_NONINV_SYS"].device.id == "MON-01"  # MSH-3 EUI-64 (no OBX-18 above it)
    assert events["MDC_ECG_CARD_BEAT_RATE"].device.eui64 == "00c0b70000000003"  # ECG VMD's OBX-18
    assert events["MDC_ECG_CARD_BEAT_RATE"].device.type == "unknown"
    assert events["MDC_ECG_CARD_BEAT_RATE"].device.id == "unknown-00c0b70000000003"
    assert events["MDC_PRESS_BLD_NONINV_SYS"].location == "ICU1-BED01"  # the inventory's, not PV1
    assert events["MDC_PRESS_BLD_NONINV_SYS"].source == "monitor"


def test_quality_flags_and_manual_measurement(decode):
    events = by_code(decode(message()))
    nibp = events["MDC_PRESS_BLD_NONINV_SYS"]
    assert nibp.quality == {Quality.MANUAL} and nibp.data_class is DataClass.SPOT_CHECK
    assert events["MDC_ECG_CARD_BEAT_RATE"].quality == {Quality.QUESTIONABLE, Quality.CALIBRATING}
    assert events["MDC_PULS_OXIM_SAT_O2"].quality == {Quality.INVALID}  # OBX-8 INV and OBX-11 W
    assert events["MDC_ECG_CARD_BEAT_RATE"].data_class is DataClass.VITAL


def test_training_messages_are_flagged_test(decode):
    assert all(Quality.TEST in e.quality for e in decode(message(pid="T")))


def test_identity_ignores_obx4_numbering_and_msh10(decode):
    first = decode(message(cid="C1"))
    renumbered = [r.replace("|1.1.", "|1.4.").replace("|1.2.", "|1.7.") for r in ROWS]
    second = decode(message(rows=renumbered, cid="C2"))
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert [(e.stream, e.seq) for e in first] == [(e.stream, e.seq) for e in second]
    assert len({e.event_id for e in first}) == len(first)


def test_corrected_result_is_a_new_event(decode):
    corrected = [r.replace("|72|", "|74|").replace("||R", "||C") if "1.2.1.1" in r else r for r in ROWS]
    before = by_code(decode(message()))["MDC_ECG_CARD_BEAT_RATE"]
    after = by_code(decode(message(rows=corrected)))["MDC_ECG_CARD_BEAT_RATE"]
    assert before.event_id != after.event_id and after.value_sent == 74.0


def test_stream_per_device_and_metric(decode):
    events = by_code(decode(message()))
    assert events["MDC_PRESS_BLD_NONINV_SYS"].stream == "MON-01/MDC_PRESS_BLD_NONINV_SYS"


def test_pid_binding_only_when_the_rules_say_so(decode):
    assert all(e.patient is None for e in decode(message()))
    bound = decode(message(), bind_patient_from_pid=True)[0].patient
    assert bound.patient_id == "MRN1" and bound.location == "ICU1-BED09"


def row(n, text):
    return [r if not r.startswith(f"OBX|{n}|") else text for r in ROWS]


@pytest.mark.parametrize(
    "rows,obr,code,where,words",
    [
        (row(6, "OBX|6|NM|147842^MDC_ECG_CARD_BEAT_RATE^MDC||72||||||R"), OBR, "101", "OBX[6]-4", "sub-id"),
        (row(6, "OBX|6|NM|147842^MDC_ECG_CARD_BEAT_RATE^MDC|1.2|72||||||R"), OBR, "102", "OBX[6]-4",
         "MDS.VMD.CHANNEL.METRIC"),
        (row(6, "OBX|6|NM|147842^MDC_ECG_CARD_BEAT_RATE^MDC|1.2.1.1|7x2||||||R"), OBR, "102", "OBX[6]-5",
         "not an NM number"),
        (row(6, "OBX|6|NM|147842^MDC_ECG_CARD_BEAT_RATE^MDC|1.2.1.1|72|||||"), OBR, "101", "OBX[6]-11",
         "result status"),
        (row(6, "OBX|6|NM|147842^MDC_ECG_CARD_BEAT_RATE^MDC|1.2.1.1|72||||||Q"), OBR, "103", "OBX[6]-11",
         "table 0085"),
        (row(6, "OBX|6|XX|147842^MDC_ECG_CARD_BEAT_RATE^MDC|1.2.1.1|72||||||R"), OBR, "103", "OBX[6]-2",
         "value type 'XX'"),
        (row(6, "OBX|6||147842^MDC_ECG_CARD_BEAT_RATE^MDC|1.2.1.1|72||||||R"), OBR, "101", "OBX[6]-2", "value type"),
        (row(6, "OBX|6|NM||1.2.1.1|72||||||R"), OBR, "101", "OBX[6]-3", "observation identifier"),
        (row(6, "OBX|6|NM|147842^HR^MDC|1.2.1.1|72||||||R|||2026011"), OBR, "102", "OBX[6]-14", "date/time"),
        # digits that str.isdigit() accepts and int() does not (found by fuzzing): was AE 207 "failed to decode"
        (row(6, "OBX|6|NM|147842^HR^MDC|1.0.0.\u00b2|72||||||R"), OBR, "102", "OBX[6]-4", "MDS.VMD.CHANNEL.METRIC"),
        (row(6, "OBX|6|NM|147842^HR^MDC|1.2.1.1|72||||||R|||20150\u00b322115000"), OBR, "102", "OBX[6]-14",
         "date/time"),
        (ROWS, "OBR|1|||x", "101", "OBR-7", "observation date/time"),
    ],
)
def test_strict_errors_name_the_field(decode, rows, obr, code, where, words):
    with pytest.raises(Hl7Error) as err:
        decode(message(rows=rows, obr=obr))
    assert err.value.code == code and err.value.ack_code == "AE"
    assert err.value.where == where.replace("OBR-7", "OBR-7") and words in err.value.reason
    assert where in err.value.reason


def test_obx_before_obr_and_missing_obr(decode):
    text = "\r".join([MSH.format(cid="C", pid="P"), ROWS[5], OBR]) + "\r"
    with pytest.raises(Hl7Error, match=r"OBX\[1\] comes before any OBR"):
        decode(text)
    with pytest.raises(Hl7Error, match="has no OBR segment"):
        decode("\r".join([MSH.format(cid="C", pid="P"), "PID|||1"]) + "\r")


def test_processing_id_must_be_known(decode):
    with pytest.raises(Hl7Error) as err:
        decode(message(pid="X"))
    assert err.value.code == "202" and err.value.ack_code == "AR"


@pytest.mark.parametrize(
    "static,ms,extra",
    [
        (("0600dc7500010001", "MDC_DEV_ECG_VMD", None, "MDC", "147842"), 1_767_265_140_000, None),
        (("name", None, None, "", "X"), 0, "MDC_ECG_SINUS_RHY"),
        (("name", None, None, "", "X"), 5, 74.0),
    ],
)
def test_cached_event_id_equals_make_event_id(static, ms, extra):
    from connectors.hl7.pcd01 import event_id
    from hub.events import make_event_id

    if extra is None:
        assert event_id(static, ms) == make_event_id(*static, ms)
        assert event_id(static, ms, None) == make_event_id(*static, ms, None)
    else:
        assert event_id(static, ms, extra) == make_event_id(*static, ms, extra)
