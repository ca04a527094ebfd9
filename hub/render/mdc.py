"""A small IEEE 11073-10101 (MDC) vocabulary: the terms the renderers need a reference id for.

Rule files (rules/codes.yaml) name every metric's canonical code and ref id; this table adds
the terms they do not spell out: the specific codes devices send (arterial vs cuff pressure,
pulse rate sources), containment-tree device terms (MDS / VMD / channel), alert events,
ACM attributes, dimensions and enumerations. Every code here is taken from a real IHE PCD or
HL7 PoCD sample in ../shared/data or follows the 11073 numbering shown there
(partition * 65536 + term; for a device term: MDS = VMD - 1, channel = VMD + 1).
"""

from __future__ import annotations

from typing import NamedTuple

MDC_SYSTEM_URI = "urn:iso:std:iso:11073:10101"
MDC_SYSTEM_NAMES = frozenset({"MDC", "mdc", MDC_SYSTEM_URI, "ISO11073", "IEEE11073"})


class MdcTerm(NamedTuple):
    code: int
    ref: str


def _terms(*pairs: tuple[int, str]) -> dict[int, str]:
    return dict(pairs)


# Metrics (partition 2, SCADA) sent by devices in addition to the canonical ones in the rules.
METRICS = _terms(
    (147842, "MDC_ECG_CARD_BEAT_RATE"),
    (147232, "MDC_ECG_TIME_PD_QT_GL"),
    (147236, "MDC_ECG_TIME_PD_QTc"),
    (149530, "MDC_PULS_OXIM_PULS_RATE"),
    (149546, "MDC_PULS_RATE_NON_INV"),
    (150017, "MDC_PRESS_BLD_ART_SYS"),
    (150018, "MDC_PRESS_BLD_ART_DIA"),
    (150019, "MDC_PRESS_BLD_ART_MEAN"),
    (150021, "MDC_PRESS_BLD_NONINV_SYS"),
    (150022, "MDC_PRESS_BLD_NONINV_DIA"),
    (150023, "MDC_PRESS_BLD_NONINV_MEAN"),
    (150033, "MDC_PRESS_BLD_SYS"),
    (150034, "MDC_PRESS_BLD_DIA"),
    (150035, "MDC_PRESS_BLD_MEAN"),
    (150301, "MDC_PRESS_BLD_ART_ABP_SYS"),
    (150302, "MDC_PRESS_BLD_ART_ABP_DIA"),
    (150303, "MDC_PRESS_BLD_ART_ABP_MEAN"),
    (150344, "MDC_TEMP"),
    (150364, "MDC_TEMP_BODY"),
    (150448, "MDC_PULS_OXIM_PERF_REL"),
    (150456, "MDC_PULS_OXIM_SAT_O2"),
    (151562, "MDC_RESP_RATE"),
    (151586, "MDC_VENT_RESP_RATE"),
    (184327, "MDC_ECG_STAT_RHY"),
)

# Enumerated values (valueCodeableConcept / CWE).
ENUMERATIONS = _terms((147474, "MDC_ECG_SINUS_RHY"))

# Device terms (partition 1, object infrastructure).
DEVICES = _terms(
    (69641, "MDC_DEV_ANALY_SAT_O2_MDS"),
    (69642, "MDC_DEV_ANALY_SAT_O2_VMD"),
    (69710, "MDC_DEV_ANALY_PRESS_BLD_VMD"),
    (69711, "MDC_DEV_ANALY_PRESS_BLD_CHAN"),
    (69797, "MDC_DEV_ECG_MDS"),
    (69798, "MDC_DEV_ECG_VMD"),
    (69799, "MDC_DEV_ECG_CHAN"),
    (69902, "MDC_DEV_METER_TEMP_VMD"),
    (69903, "MDC_DEV_METER_TEMP_CHAN"),
    (69965, "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS"),
    (69985, "MDC_DEV_PUMP_INFUS_MDS"),
    (69986, "MDC_DEV_PUMP_INFUS_VMD"),
    (69987, "MDC_DEV_PUMP_INFUS_CHAN"),
    (70001, "MDC_DEV_SYS_PT_VENT_MDS"),
    (70002, "MDC_DEV_SYS_PT_VENT_VMD"),
    (70003, "MDC_DEV_SYS_PT_VENT_CHAN"),
    (70685, "MDC_DEV_PRESS_BLD_NONINV_MDS"),
    (70686, "MDC_DEV_PRESS_BLD_NONINV_VMD"),
    (70687, "MDC_DEV_PRESS_BLD_NONINV_CHAN"),
    (70771, "MDC_DEV_ANALY_PERF_REL_CHAN"),
)

# Alert events (partition 3) and the ACM attributes of a PCD-04 report.
EVENTS = _terms(
    (196616, "MDC_EVT_ALARM"),
    (196648, "MDC_EVT_HI"),
    (196670, "MDC_EVT_LO"),
    (196940, "MDC_EVT_FLUID_LINE_OCCL"),
)
ALERT_ATTRIBUTES = _terms(
    (68480, "MDC_ATTR_ALERT_SOURCE"),
    (68481, "MDC_ATTR_EVENT_PHASE"),
    (68482, "MDC_ATTR_ALARM_STATE"),
    (68483, "MDC_ATTR_ALARM_INACTIVATION_STATE"),
    (68484, "MDC_ATTR_ALARM_PRIORITY"),
    (68485, "MDC_ATTR_ALERT_TYPE"),
)

# Dimensions (partition 4) by UCUM unit, where the UCUM unit names one MDC dimension.
# "/min" is not here: beats and breaths per minute share it; the metric's own rule decides.
DIMENSIONS_BY_UCUM: dict[str, MdcTerm] = {
    "%": MdcTerm(262688, "MDC_DIM_PERCENT"),
    "1": MdcTerm(262656, "MDC_DIM_DIMLESS"),
    "mm[Hg]": MdcTerm(266016, "MDC_DIM_MMHG"),
    "Cel": MdcTerm(268192, "MDC_DIM_DEGC"),
    "[degF]": MdcTerm(266560, "MDC_DIM_FAHR"),
    "ms": MdcTerm(264338, "MDC_DIM_MILLI_SEC"),
    "mL/h": MdcTerm(265266, "MDC_DIM_MILLI_L_PER_HR"),
    "mL": MdcTerm(263762, "MDC_DIM_MILLI_L"),
    "cm[H2O]": MdcTerm(266048, "MDC_DIM_CM_H2O"),
    "kg": MdcTerm(263875, "MDC_DIM_KILO_G"),
}

ALL_TERMS: dict[int, str] = {**METRICS, **ENUMERATIONS, **DEVICES, **EVENTS, **ALERT_ATTRIBUTES}
CODE_BY_REF: dict[str, int] = {ref: code for code, ref in ALL_TERMS.items()}

MDC_EVT_ALARM = MdcTerm(196616, "MDC_EVT_ALARM")


def ref_for(code: int) -> str:
    """The reference id of a known code, or "" (a code without a ref id is still a valid MDC code)."""
    return ALL_TERMS.get(code, "")


def parse_term(text: str | None) -> MdcTerm | None:
    """Read an MDC term as devices send it: "150017", "MDC_PRESS_BLD_ART_SYS" or "150017^MDC_PRESS_BLD_ART_SYS".

    Returns None when the text is not an MDC code (e.g. a vendor code).
    """
    if not text:
        return None
    head, _, tail = text.strip().partition("^")
    tail = tail.partition("^")[0]
    if head.isdigit():
        code = int(head)
        return MdcTerm(code, tail if tail.startswith("MDC_") else ref_for(code))
    if head.startswith("MDC_"):
        code = CODE_BY_REF.get(head)
        if code is not None:
            return MdcTerm(code, head)
    return None
