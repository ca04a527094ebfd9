"""The IEEE 11073 containment tree the renderers report: MDS per device, VMD and channel per metric.

IHE PCD-01 OBX-4 is `<MDS>.<VMD>.<CHANNEL>.<METRIC>`; each level that is present gets its own
device-related OBX carrying the MDC term of that MDS / VMD / channel. The terms below follow the
IHE PCD TF-2 E.1 samples and the HL7 PoCD examples (data/hl7v2, data/fhir). A metric whose family
is unknown is reported directly under its MDS (`n.0.0.m`, the 'flattened' form of TF-2 B.8.1).
"""

from __future__ import annotations

from hub.render.mdc import DEVICES, MdcTerm


def _dev(code: int) -> MdcTerm:
    return MdcTerm(code, DEVICES[code])


MULTI_PARAM_MDS = _dev(69965)

# Device type (rules device_types[].name) -> MDS term.
MDS_BY_DEVICE_TYPE: dict[str, MdcTerm] = {
    "multi-parameter-monitor": MULTI_PARAM_MDS,
    "arterial-line": MULTI_PARAM_MDS,  # a pressure module inside a monitor
    "nibp-cuff": _dev(70685),
    "pulse-oximeter": _dev(69641),
    "infusion-pump": _dev(69985),
    "ventilator": _dev(70001),
    "ecg-cart": _dev(69797),
    "holter-recorder": _dev(69797),
    "ecg-stream": _dev(69797),
}

ECG = (_dev(69798), _dev(69799))
SPO2 = (_dev(69642), _dev(70771))
NIBP = (_dev(70686), _dev(70687))
INVASIVE_BP = (_dev(69710), _dev(69711))
TEMPERATURE = (_dev(69902), _dev(69903))
PUMP = (_dev(69986), _dev(69987))
VENTILATOR = (_dev(70002), _dev(70003))

# Specific MDC codes whose family is fixed whatever device sent them.
FAMILY_BY_CODE: dict[int, tuple[MdcTerm, MdcTerm]] = {
    149530: SPO2, 150448: SPO2, 150456: SPO2,
    149546: NIBP, 150021: NIBP, 150022: NIBP, 150023: NIBP,
    150017: INVASIVE_BP, 150018: INVASIVE_BP, 150019: INVASIVE_BP,
    150301: INVASIVE_BP, 150302: INVASIVE_BP, 150303: INVASIVE_BP,
    150344: TEMPERATURE, 150364: TEMPERATURE,
    147842: ECG, 147232: ECG, 147236: ECG, 184327: ECG,
    151586: VENTILATOR,
}

# Canonical metric -> family, refined by the device type that measured it.
_BP = {"arterial-line": INVASIVE_BP, "nibp-cuff": NIBP}
FAMILY_BY_METRIC: dict[str, dict[str, tuple[MdcTerm, MdcTerm]]] = {
    "heart-rate": {"pulse-oximeter": SPO2, "nibp-cuff": NIBP, "*": ECG},
    "spo2": {"*": SPO2},
    "perfusion-index": {"*": SPO2},
    "bp-systolic": {**_BP, "*": NIBP},
    "bp-diastolic": {**_BP, "*": NIBP},
    "bp-mean": {**_BP, "*": NIBP},
    "respiratory-rate": {"ventilator": VENTILATOR, "*": ECG},
    "temperature": {"*": TEMPERATURE},
    "qt-interval": {"*": ECG},
    "qtc-interval": {"*": ECG},
    "ecg-rhythm": {"*": ECG},
    "infusion-rate": {"*": PUMP},
    "tidal-volume": {"*": VENTILATOR},
    "peep": {"*": VENTILATOR},
    "fio2": {"*": VENTILATOR},
}

# Device-type specific MDC terms for canonical metrics sent with vendor codes, so that an arterial
# line is told from a cuff even when the device did not send an MDC code.
SPECIFIC_TERM: dict[tuple[str, str], int] = {
    ("bp-systolic", "arterial-line"): 150017,
    ("bp-diastolic", "arterial-line"): 150018,
    ("bp-mean", "arterial-line"): 150019,
    ("bp-systolic", "nibp-cuff"): 150021,
    ("bp-diastolic", "nibp-cuff"): 150022,
    ("bp-mean", "nibp-cuff"): 150023,
    ("heart-rate", "pulse-oximeter"): 149530,
    ("heart-rate", "nibp-cuff"): 149546,
}


def mds_for(device_type: str) -> MdcTerm:
    """The MDS term of a device type; unknown types are reported as a multi-parameter monitor MDS."""
    return MDS_BY_DEVICE_TYPE.get(device_type, MULTI_PARAM_MDS)


def family_for(metric: str | None, code: int, device_type: str) -> tuple[MdcTerm, MdcTerm] | None:
    """(VMD, channel) for a metric as measured by a device type, or None when unknown."""
    family = FAMILY_BY_CODE.get(code)
    if family is not None:
        return family
    by_type = FAMILY_BY_METRIC.get(metric or "")
    if by_type is None:
        return None
    return by_type.get(device_type) or by_type.get("*")
