"""Device identity for pushed data: which inventory device sent this? (pure, built once from the rules)

Lookup order: EUI-64 (devices[].eui64), then a name: devices[].id, devices[].serial or one of
devices[].connector.equipment_ids. A device the inventory does not know is NOT dropped: it gets
type "unknown" and the id "unknown-<EUI-64 or name>", so its events flow on and the hub parks or
flags them downstream (no location, no patient) until someone adds the device to the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.events import Device
from hub.rules.models import RuleSet

UNKNOWN_TYPE = "unknown"
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_EUI_SEPARATORS = re.compile(r"[\s:\-]")
_UNSAFE_ID_CHARS = re.compile(r"[^0-9A-Za-z._-]+")


@dataclass(frozen=True)
class KnownDevice:
    device: Device
    source: str | None = None  # precedence source of its device type
    location: str | None = None
    known: bool = True


def normalise_eui64(text: str | None) -> str | None:
    """'08:00:19:FF-FE3E D02D' -> '080019fffe3ed02d'; None unless 16 hex digits."""
    if not text:
        return None
    clean = _EUI_SEPARATORS.sub("", text).lower()
    return clean if _HEX16.match(clean) else None


class DeviceDirectory:
    def __init__(self, rules: RuleSet):
        self._by_eui: dict[str, KnownDevice] = {}
        self._by_name: dict[str, KnownDevice] = {}
        self._unknown: dict[str, KnownDevice] = {}
        for entry in rules.devices:
            dtype = rules.device_type(entry.type)
            eui = normalise_eui64(entry.eui64)
            known = KnownDevice(
                Device(
                    id=entry.id,
                    type=entry.type,
                    serial=entry.serial,
                    eui64=eui,
                    model=entry.model,
                    manufacturer=entry.manufacturer,
                ),
                source=dtype.source if dtype else None,
                location=entry.location,
            )
            if eui:
                self._by_eui[eui] = known
            names = [entry.id, entry.serial, *entry.connector.get("equipment_ids", [])]
            for name in names:
                if name:
                    self._by_name[str(name)] = known

    def by_eui64(self, eui: str | None) -> KnownDevice | None:
        key = normalise_eui64(eui)
        return self._by_eui.get(key) if key else None

    def by_name(self, name: str | None) -> KnownDevice | None:
        return self._by_name.get(name) if name else None

    def by_id(self, device_id: str) -> KnownDevice | None:
        found = self._by_name.get(device_id)
        return found if found is not None and found.device.id == device_id else None

    def resolve(self, euis: list[str | None], names: list[str | None]) -> KnownDevice:
        """First inventory match among the EUI-64s, then the names; else an 'unknown' device."""
        for eui in euis:
            found = self.by_eui64(eui)
            if found is not None:
                return found
        for name in names:
            found = self.by_name(name)
            if found is not None:
                return found
        eui = next((normalise_eui64(e) for e in euis if normalise_eui64(e)), None)
        name = next((n for n in names if n), None)
        return self.unknown(eui or name or "unidentified", eui=eui)

    def unknown(self, key: str, *, eui: str | None = None) -> KnownDevice:
        found = self._unknown.get(key)
        if found is None:
            safe = _UNSAFE_ID_CHARS.sub("_", key)[:64]
            found = KnownDevice(Device(id=f"unknown-{safe}", type=UNKNOWN_TYPE, eui64=eui), known=False)
            if len(self._unknown) < 10_000:
                self._unknown[key] = found
        return found
