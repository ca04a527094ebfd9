"""Connector registry: protocol name -> lazy "module:Class", and building connectors from rules.

    connectors = build_connectors(rules, overrides={"mllp": {"port": 2576}})

The registry maps each `Protocol` value of the device inventory (hub/rules/devices.py) to the
class that speaks it, as a string, so a connector's dependencies are imported only when a
rule set uses it (faust-style). Third-party connectors register through the entry-point group
`devsync.connectors` (name = protocol, value = "module:Class").

`build_connectors` builds one connector per listener (MLLP, HTTP, MQTT) and one per device
group (all poll-tcp/poll-http devices, all hybrid-tcp devices, all SDC devices). A connector
class offers `from_rules(rules, *, devices, overrides)`; listener classes without it are
called with their `connectors:` settings model (overrides applied) and `rules=` when they take it.

Per-device settings live in `device_types[].connector` and `devices[].connector` (the device's
keys win); each connector validates the merged dict with its own pydantic model through
`connector_settings`, so a typo fails at build time with the device, the field and the reason.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from connectors.base import Connector
from hub.errors import RuleError
from hub.logs import get_logger
from hub.rules.devices import DeviceEntry, DeviceType, Protocol
from hub.rules.models import RuleSet

log = get_logger("connectors")

CONNECTORS: dict[str, str] = {
    Protocol.ECG_STREAM.value: "connectors.ecg_stream.connector:EcgStreamConnector",
    Protocol.HL7V2_MLLP.value: "connectors.mllp:MllpConnector",
    Protocol.HTTP.value: "connectors.http:HttpConnector",
    Protocol.MQTT.value: "connectors.mqtt:MqttConnector",
    Protocol.POLL_TCP.value: "connectors.polling:PollingConnector",
    Protocol.POLL_HTTP.value: "connectors.polling:PollingConnector",
    Protocol.HYBRID_TCP.value: "connectors.hybrid:HybridConnector",
    Protocol.SDC.value: "connectors.sdc:SdcConnector",
}

# listener connectors: protocol -> section of the `connectors:` rules that configures them
LISTENERS = {Protocol.HL7V2_MLLP.value: "mllp", Protocol.HTTP.value: "http", Protocol.MQTT.value: "mqtt"}
# device-group connectors: protocols served by one connector instance together
DEVICE_GROUPS = {
    "ecg-stream": (Protocol.ECG_STREAM.value,),
    "polling": (Protocol.POLL_TCP.value, Protocol.POLL_HTTP.value),
    "hybrid": (Protocol.HYBRID_TCP.value,),
    "sdc": (Protocol.SDC.value,),
}
ENTRY_POINT_GROUP = "devsync.connectors"

M = TypeVar("M", bound=BaseModel)
# (section, index in the merged rules) -> (file, line), from hub.rules.load.load_rules_with_origins;
# set while build_connectors runs so settings errors can name the rule file and line
_ORIGINS: ContextVar[dict | None] = ContextVar("connector_rule_origins", default=None)


class ConnectorNotAvailableError(RuleError):
    """The rules use a protocol whose connector class cannot be loaded."""


def registered_connectors() -> dict[str, str]:
    """Built-in names plus third-party entry points (entry points may not shadow built-ins)."""
    out = dict(CONNECTORS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, ep.value)
    return out


def resolve_connector(protocol: str) -> type:
    """Import the class registered for `protocol`; errors name the protocol and the target."""
    known = registered_connectors()
    target = known.get(protocol)
    if target is None:
        raise ConnectorNotAvailableError(
            f"no connector registered for protocol '{protocol}' (known: {', '.join(sorted(known))})"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConnectorNotAvailableError(
            f"connector for protocol '{protocol}' ({target}) cannot be imported: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConnectorNotAvailableError(f"connector for protocol '{protocol}': {module_name} has no class {class_name}")
    return cls


def connector_settings(model: type[M], rules: RuleSet, device: DeviceEntry) -> M:
    """Validate a device's merged connector dict (type defaults, then device keys) with `model`."""
    dtype = rules.device_type(device.type)
    merged: dict[str, Any] = {**(dtype.connector if dtype else {}), **device.connector}
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"]) or "(root)"
            got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
            problems.append(
                f"devices[{device.id}].connector.{field} (or device_types[{device.type}].connector.{field}): "
                f"{err['msg']}{got}"
            )
        raise RuleError(f"{rule_location(rules, device)}{model.__name__} for device {device.id}: "
                        + "; ".join(problems)) from None


def rule_location(rules: RuleSet, device: DeviceEntry) -> str:
    """`file:line: ` of the device entry (and its type) when the rule origins are known."""
    origins = _ORIGINS.get()
    if not origins:
        return ""
    places = []
    index = next((i for i, d in enumerate(rules.devices) if d.id == device.id), None)
    if index is not None and ("devices", index) in origins:
        file, line = origins[("devices", index)]
        places.append(f"{file}:{line}")
    type_index = next((i for i, t in enumerate(rules.device_types) if t.name == device.type), None)
    if type_index is not None and ("device_types", type_index) in origins:
        file, line = origins[("device_types", type_index)]
        places.append(f"type at {file}:{line}")
    return (", ".join(places) + ": ") if places else ""


def devices_by_protocol(rules: RuleSet) -> dict[str, list[DeviceEntry]]:
    out: dict[str, list[DeviceEntry]] = {}
    for device in rules.devices:
        dtype: DeviceType | None = rules.device_type(device.type)
        if dtype is not None:
            out.setdefault(dtype.protocol.value, []).append(device)
    return out


def _build_listener(protocol: str, rules: RuleSet, devices: list[DeviceEntry], overrides: Mapping[str, Any]):
    section = LISTENERS[protocol]
    cls = resolve_connector(protocol)
    section_overrides = dict(overrides.get(section) or {})
    if hasattr(cls, "from_rules"):
        return cls.from_rules(rules, devices=devices, overrides=section_overrides)
    settings = getattr(rules.connectors, section)
    if settings is None:
        field = type(rules.connectors).model_fields[section]
        settings = field.annotation.__args__[0]()  # the section's model with its defaults
    if section_overrides:
        settings = settings.model_copy(update=section_overrides)
    params = inspect.signature(cls).parameters
    return cls(settings, rules=rules) if "rules" in params else cls(settings)


def _build_group(protocol: str, rules: RuleSet, devices: list[DeviceEntry]):
    cls = resolve_connector(protocol)
    if not hasattr(cls, "from_rules"):
        raise ConnectorNotAvailableError(
            f"connector for protocol '{protocol}' ({registered_connectors()[protocol]}) has no "
            "from_rules(rules, *, devices, overrides) classmethod"
        )
    return cls.from_rules(rules, devices=devices, overrides={})


def build_connectors(rules: RuleSet, *, overrides: Mapping[str, Any] | None = None,
                     origins: dict | None = None) -> list[Connector]:
    """One connector per listener and per device group the rules declare.

    `overrides` maps a listener section (`mllp`, `http`, `mqtt`) to field updates, e.g.
    `{"mllp": {"port": 2576}}` (the `devsync run --mllp-port` option). `origins` (from
    `load_rules_with_origins`) lets settings errors name the rule file and line. Raises RuleError
    when a protocol's connector cannot be loaded or a device's connector settings are invalid.
    """
    token = _ORIGINS.set(origins)
    try:
        return _build_all(rules, overrides)
    finally:
        _ORIGINS.reset(token)


def _build_all(rules: RuleSet, overrides: Mapping[str, Any] | None) -> list[Connector]:
    overrides = overrides or {}
    unknown = set(overrides) - set(LISTENERS.values())
    if unknown:
        raise RuleError(f"connector overrides: unknown section(s) {sorted(unknown)} (known: mllp, http, mqtt)")
    by_protocol = devices_by_protocol(rules)
    built: list[Connector] = []
    for protocol, section in LISTENERS.items():
        if getattr(rules.connectors, section) is not None or protocol in by_protocol or section in overrides:
            built.append(_build_listener(protocol, rules, by_protocol.get(protocol, []), overrides))
    for protocols in DEVICE_GROUPS.values():
        devices = [d for p in protocols for d in by_protocol.get(p, [])]
        if devices:
            built.append(_build_group(protocols[0], rules, devices))
    handled = set(LISTENERS) | {p for group in DEVICE_GROUPS.values() for p in group}
    for protocol, devices in sorted(by_protocol.items()):
        if protocol in handled:
            continue
        if protocol in registered_connectors():
            built.append(_build_group(protocol, rules, devices))
        else:
            log.warning(
                "no connector for protocol; devices not connected",
                protocol=protocol,
                devices=",".join(d.id for d in devices),
            )
    return built
