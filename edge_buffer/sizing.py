"""Buffer sizing from the device mix (pure): worst-case events and disk for an outage of N hours.

Rate of one device for one data class, first match wins:
  1. edge.device_type_rates[type][class]              (what the engineer measured)
  2. events_per_poll / sync_profiles[class].poll_interval_s, for polled and hybrid devices
  3. edge.sizing_rates[class]                         (conservative defaults)
Bytes: events x (edge.event_bytes[class] + edge.row_overhead_bytes), plus edge.disk_headroom.
The payload bytes are what edge.quota_bytes counts; the disk figure is what to provision.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from hub.events import DataClass
from hub.rules.devices import DeviceEntry, SyncMode
from hub.rules.models import RuleSet


@dataclass(frozen=True)
class SizingLine:
    device_type: str
    devices: float  # may be fractional when scaled to a bed count
    data_class: DataClass
    rate_per_device: float  # events/s
    rate_source: str
    events: float
    payload_bytes: float


@dataclass(frozen=True)
class Sizing:
    hours: float
    lines: list[SizingLine]
    quota_bytes: int | None
    quota_rows: int | None
    row_overhead_bytes: int
    disk_headroom: float

    @property
    def events(self) -> float:
        return sum(line.events for line in self.lines)

    @property
    def payload_bytes(self) -> float:
        return sum(line.payload_bytes for line in self.lines)

    @property
    def disk_bytes(self) -> float:
        return (self.payload_bytes + self.events * self.row_overhead_bytes) * (1 + self.disk_headroom)

    @property
    def events_per_s(self) -> float:
        return sum(line.rate_per_device * line.devices for line in self.lines)

    def by_class(self) -> dict[DataClass, tuple[float, float]]:
        out: dict[DataClass, tuple[float, float]] = {}
        for line in self.lines:
            ev, by = out.get(line.data_class, (0.0, 0.0))
            out[line.data_class] = (ev + line.events, by + line.payload_bytes)
        return out

    def hours_within_quota(self) -> float | None:
        """How long an outage the configured quota covers before shedding starts."""
        limits = []
        if self.quota_bytes and self.payload_bytes:
            limits.append(self.quota_bytes / (self.payload_bytes / self.hours))
        if self.quota_rows and self.events:
            limits.append(self.quota_rows / (self.events / self.hours))
        return min(limits) if limits else None


def device_rate(rules: RuleSet, type_name: str, data_class: DataClass) -> tuple[float, str]:
    edge = rules.edge
    override = edge.device_type_rates.get(type_name, {})
    if data_class in override:
        return override[data_class], "edge.device_type_rates"
    dtype = rules.device_type(type_name)
    profile = rules.sync_profiles.get(data_class)
    polled = dtype is not None and dtype.sync_mode in (SyncMode.POLLING, SyncMode.HYBRID)
    if polled and profile is not None and profile.poll_interval_s:
        return edge.events_per_poll / profile.poll_interval_s, f"poll every {profile.poll_interval_s:g} s"
    return edge.sizing_rates.get(data_class, 0.0), "edge.sizing_rates"


def select_devices(rules: RuleSet, *, all_devices: bool) -> list[DeviceEntry]:
    if all_devices:
        return list(rules.devices)
    return [d for d in rules.devices if d.gateway == rules.edge.gateway_id]


def bed_scale(devices: list[DeviceEntry], beds: int | None) -> float:
    """Factor that scales the per-bed mix of `devices` to `beds` beds (1.0 without --beds)."""
    if not beds:
        return 1.0
    locations = {d.location for d in devices if d.location}
    return beds / len(locations) if locations else 1.0


def size_buffer(rules: RuleSet, devices: list[DeviceEntry], hours: float, *, beds: int | None = None) -> Sizing:
    scale = bed_scale(devices, beds)
    counts: Counter[str] = Counter()
    roaming: Counter[str] = Counter()
    for device in devices:
        (counts if device.location else roaming)[device.type] += 1
    lines: list[SizingLine] = []
    seconds = hours * 3600.0
    for type_name in sorted(set(counts) | set(roaming)):
        n = counts[type_name] * scale + roaming[type_name]  # roaming devices (no bed) are not scaled
        dtype = rules.device_type(type_name)
        for data_class in (dtype.data_classes if dtype else []):
            rate, source = device_rate(rules, type_name, data_class)
            events = rate * n * seconds
            size = rules.edge.event_bytes.get(data_class, 1000)
            lines.append(SizingLine(type_name, n, data_class, rate, source, events, events * size))
    edge = rules.edge
    return Sizing(hours, lines, edge.quota_bytes, edge.quota_rows, edge.row_overhead_bytes, edge.disk_headroom)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:,.0f} B"
        n /= 1024.0
    return f"{n:,.1f} TiB"


def format_sizing(sizing: Sizing, title: str) -> str:
    out = [title, "",
           f"{'device type':<26}{'devices':>8}  {'class':<11}{'ev/s/dev':>9}  {'events':>14}  {'payload':>12}  rate from"]
    for ln in sizing.lines:
        out.append(f"{ln.device_type:<26}{ln.devices:>8.1f}  {ln.data_class.value:<11}{ln.rate_per_device:>9.3f}  "
                   f"{ln.events:>14,.0f}  {human_bytes(ln.payload_bytes):>12}  {ln.rate_source}")
    out += ["", "per data class:"]
    for cls, (ev, by) in sorted(sizing.by_class().items(), key=lambda kv: -kv[1][1]):
        out.append(f"  {cls.value:<11}{ev:>16,.0f} events  {human_bytes(by):>12}")
    out += [
        "",
        (f"worst case over {sizing.hours:g} h: {sizing.events:,.0f} events ({sizing.events_per_s:,.1f} events/s), "
         f"payload {human_bytes(sizing.payload_bytes)}"),
        (f"disk needed (rows + {sizing.row_overhead_bytes} B/row overhead + {sizing.disk_headroom:.0%} headroom): "
         f"{human_bytes(sizing.disk_bytes)}"),
        f"suggested edge.quota_bytes: {math.ceil(sizing.payload_bytes)}",
    ]
    covered = sizing.hours_within_quota()
    if covered is not None:
        quota = ", ".join(x for x in (
            f"quota_bytes {human_bytes(sizing.quota_bytes)}" if sizing.quota_bytes else "",
            f"quota_rows {sizing.quota_rows:,}" if sizing.quota_rows else "") if x)
        verdict = "enough" if covered >= sizing.hours else "NOT enough: the oldest sheddable data will be shed"
        out.append(f"configured {quota} covers {covered:,.1f} h of outage at this rate ({verdict})")
    return "\n".join(out)
