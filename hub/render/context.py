"""RenderContext: everything the renderers look up, built once from the rule set.

    ctx = RenderContext.from_rules(load_rules("rules"), sending_application="DEVSYNC", sending_facility="HUB")

Holds metric -> MetricCode, UCUM -> MDC dimension, device type -> MDS term, the device inventory
(EUI-64s) and the identity settings of the sending system. Pure lookups, no I/O; cheap to share.
Per-sink unit overrides (routing[].units) are applied by the caller before rendering: the
renderers report the value and UCUM unit the event carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.errors import RuleError
from hub.events import Device, Event
from hub.render import hierarchy, mdc
from hub.render.escape import escape_hl7
from hub.render.mdc import MdcTerm
from hub.rules.codes import MetricCode
from hub.rules.models import RuleSet

EUI64_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
_EUI64 = re.compile(r"^[0-9A-F]{16}$")
RESULT_STATUSES = ("R", "F")
TEMPLATE_LIMIT = 50_000
NAMESPACE_MAX = 20  # HL7 v2.6 IS length (HD-1 namespace id)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """How one device is named in the outputs."""

    mds: MdcTerm
    eui64: str | None  # 16 upper-case hex digits, or None
    equipment_id: str  # HL7 EI, escaped: EUI^^EUI^EUI-64 or device-id^sending-app
    identifier: dict  # FHIR Identifier of the Device
    display: str | None
    type_name: str


class RenderContext:
    """Lookups and sender identity for build_oru_r01 / build_observation / build_oru_r40."""

    def __init__(
        self,
        *,
        metrics: dict[str, MetricCode] | None = None,
        unit_terms: dict[str, MdcTerm] | None = None,
        conversions: dict[tuple[str, str], tuple[float, float]] | None = None,
        device_eui64: dict[str, str] | None = None,
        device_locations: dict[str, str] | None = None,
        sending_application: str = "DEVSYNC",
        sending_facility: str = "HUB",
        receiving_application: str = "",
        receiving_facility: str = "",
        hub_eui64: str | None = None,
        patient_id_system: str = "urn:devsync:patient-id",
        patient_id_type: str = "MR",
        patient_id_authority: str | None = None,
        encounter_id_system: str = "urn:devsync:encounter-id",
        device_id_system: str = "urn:devsync:device-id",
        result_status: str = "R",
        local_code_system: str = "99DEVSYNC",
    ):
        if result_status not in RESULT_STATUSES:
            raise RuleError(f"render: result_status {result_status!r} is not one of {', '.join(RESULT_STATUSES)}")
        if not sending_application:
            raise RuleError("render: sending_application must not be empty (it names the hub in MSH-3 and OBR-2/3)")
        for name, value in (("sending_application", sending_application), ("sending_facility", sending_facility),
                            ("receiving_application", receiving_application),
                            ("receiving_facility", receiving_facility)):
            if len(value) > NAMESPACE_MAX or escape_hl7(value) != value:
                raise RuleError(f"render: {name} {value!r} must be at most {NAMESPACE_MAX} characters without HL7 "
                                f"delimiters |^~\\& (it is an HL7 namespace id)")
        if hub_eui64 is not None and normalise_eui64(hub_eui64) is None:
            raise RuleError(f"render: hub_eui64 {hub_eui64!r} is not an EUI-64 (16 hex digits, e.g. 0600DC7500010001)")
        self.metrics = dict(metrics or {})
        self.unit_terms = {**mdc.DIMENSIONS_BY_UCUM, **(unit_terms or {})}
        self.conversions = dict(conversions or {})
        self.device_eui64 = dict(device_eui64 or {})
        self.device_locations = dict(device_locations or {})
        self.sending_application = sending_application
        self.sending_facility = sending_facility
        self.receiving_application = receiving_application
        self.receiving_facility = receiving_facility
        self.hub_eui64 = normalise_eui64(hub_eui64) if hub_eui64 else None
        self.patient_id_system = patient_id_system
        self.patient_id_type = patient_id_type
        self.patient_id_authority = patient_id_authority
        self.encounter_id_system = encounter_id_system
        self.device_id_system = device_id_system
        self.result_status = result_status
        self.local_code_system = local_code_system
        self.code_by_ref = {**mdc.CODE_BY_REF, **{m.mdc_ref: m.mdc_code for m in self.metrics.values()}}
        self.ref_by_code = {**mdc.ALL_TERMS, **{m.mdc_code: m.mdc_ref for m in self.metrics.values()}}
        # HL7 pieces that never change, escaped once.
        app = escape_hl7(sending_application)
        self.hl7_sending_app = f"{app}^{self.hub_eui64}^EUI-64" if self.hub_eui64 else app
        self.hl7_app = app
        self.hl7_header_tail = (
            f"{escape_hl7(sending_facility)}|{escape_hl7(receiving_application)}|{escape_hl7(receiving_facility)}"
        )
        self._devices: dict[tuple, DeviceInfo] = {}
        self.templates: dict[tuple, object] = {}  # renderers' per-shape caches (bounded by TEMPLATE_LIMIT)

    @classmethod
    def from_rules(cls, rules: RuleSet, *, sending_application: str = "DEVSYNC", sending_facility: str = "HUB",
                   **settings) -> RenderContext:
        """Build the lookups from a loaded rule set; `settings` are the keyword settings of __init__."""
        metrics = {m.metric: m for m in rules.codes}
        unit_terms: dict[str, MdcTerm] = {}
        for m in rules.codes:
            if m.mdc_unit_code is not None and m.unit not in mdc.DIMENSIONS_BY_UCUM and m.unit != "/min":
                unit_terms.setdefault(m.unit, MdcTerm(m.mdc_unit_code, m.mdc_unit_ref or ""))
        conversions = {(c.from_unit, c.to_unit): (c.scale, c.offset) for c in rules.units.conversions}
        euis = {d.id: d.eui64 for d in rules.devices if d.eui64}
        locations = {d.id: d.location for d in rules.devices if d.location}
        return cls(metrics=metrics, unit_terms=unit_terms, conversions=conversions, device_eui64=euis,
                   device_locations=locations, sending_application=sending_application,
                   sending_facility=sending_facility, **settings)

    # --- metrics, codes and units ---
    def metric(self, name: str | None) -> MetricCode | None:
        return self.metrics.get(name) if name else None

    def metric_term(self, event: Event) -> MdcTerm:
        """The MDC term to report for an event: the code the device sent when it is MDC (so an arterial
        line is told from a cuff), else the normalised code, else the metric's canonical code."""
        if (event.code_system_sent or "MDC") in mdc.MDC_SYSTEM_NAMES:
            sent = mdc.parse_term(event.code_sent)
            if sent is None and event.code_sent in self.code_by_ref:
                sent = MdcTerm(self.code_by_ref[event.code_sent], event.code_sent)
            if sent is not None:
                return sent if sent.ref else MdcTerm(sent.code, self.ref_by_code.get(sent.code, ""))
        metric = self.metric(event.metric)
        if metric is not None and event.mdc_code in (None, metric.mdc_code):
            # Sent with a vendor code: the device type tells an arterial line from a cuff.
            specific = hierarchy.SPECIFIC_TERM.get((metric.metric, event.device.type))
            if specific is not None:
                return MdcTerm(specific, self.ref_by_code.get(specific, ""))
        if event.mdc_code is not None:
            return MdcTerm(event.mdc_code, event.mdc_ref or self.ref_by_code.get(event.mdc_code, ""))
        if metric is None:
            raise RuleError(
                f"render: event {event.event_id}: no MDC code for metric {event.metric!r} "
                f"(code sent {event.code_sent!r} in {event.code_system_sent!r}); add it to the codes section "
                f"of the rules (known metrics: {', '.join(sorted(self.metrics)) or 'none'})"
            )
        return MdcTerm(metric.mdc_code, metric.mdc_ref)

    def unit_term(self, metric: MetricCode | None, ucum: str) -> MdcTerm | None:
        """MDC dimension for a UCUM unit: the metric's own (e.g. beats vs breaths per minute) when the
        unit is the metric's canonical unit, else the unambiguous table; None when unknown."""
        if metric is not None and metric.unit == ucum and metric.mdc_unit_code is not None:
            return MdcTerm(metric.mdc_unit_code, metric.mdc_unit_ref or "")
        return self.unit_terms.get(ucum)

    def reference_range(self, metric: MetricCode | None, ucum: str | None) -> tuple[float, float] | None:
        """The metric's range from the rules, converted to `ucum` when a conversion is known."""
        if metric is None or metric.valid_range is None or ucum is None:
            return None
        low, high = metric.valid_range
        if ucum == metric.unit:
            return low, high
        conversion = self.conversions.get((metric.unit, ucum))
        if conversion is None:
            return None
        scale, offset = conversion
        return low * scale + offset, high * scale + offset

    def term_for_text(self, text: str | None) -> MdcTerm | None:
        """An enumerated text value that is an MDC reference id (e.g. MDC_ECG_SINUS_RHY), else None."""
        if not text or not text.startswith("MDC_"):
            return None
        code = self.code_by_ref.get(text)
        return MdcTerm(code, text) if code is not None else None

    # --- devices ---
    def template(self, key: tuple, build):
        """A renderer's cached piece for one event shape (device, code, unit, ...): `build()` on a miss."""
        value = self.templates.get(key)
        if value is None:
            if len(self.templates) >= TEMPLATE_LIMIT:
                self.templates.clear()
            value = self.templates[key] = build()
        return value

    def device_info(self, device: Device) -> DeviceInfo:
        key = (device.id, device.type, device.eui64, device.model, device.manufacturer)
        info = self._devices.get(key)
        if info is None:
            info = self._devices[key] = self._build_device_info(device)
        return info

    def _build_device_info(self, device: Device) -> DeviceInfo:
        eui = normalise_eui64(device.eui64 or self.device_eui64.get(device.id))
        if eui is not None:
            equipment = f"{eui}^^{eui}^EUI-64"
            identifier = {"system": EUI64_SYSTEM, "value": eui}
        else:
            equipment = f"{escape_hl7(device.id)}^{self.hl7_app}"
            identifier = {"system": self.device_id_system, "value": device.id}
        display = " ".join(p for p in (device.manufacturer, device.model) if p) or None
        return DeviceInfo(mds=hierarchy.mds_for(device.type), eui64=eui, equipment_id=equipment,
                          identifier=identifier, display=display, type_name=device.type)

    def location_of(self, event: Event) -> str | None:
        if event.patient is not None and event.patient.location:
            return event.patient.location
        return event.location or self.device_locations.get(event.device.id)


def normalise_eui64(text: str | None) -> str | None:
    """`06:00:dc:75:00:01:00:01`, `0600-dc75-...` or `0600dc7500010001` -> `0600DC7500010001`; None if not EUI-64."""
    if not text:
        return None
    compact = text.replace(":", "").replace("-", "").replace(" ", "").upper()
    return compact if _EUI64.match(compact) else None
