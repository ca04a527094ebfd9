"""IHE PCD-01 ORU^R01 (and PCD-10 ORU^R42) -> numeric / text / device-status events (pure).

Read as IHE PCD TF-2 defines it:
- OBX-4 is the containment path MDS.VMD.CHANNEL.METRIC. Rows whose METRIC part is 0 describe
  the MDS / VMD / channel; every metric row below inherits from them, nearest first:
  the equipment id (OBX-18) and the observation time (OBX-14), then OBR-7 for the time and MSH-3
  for the equipment. OBX-4 numbering may change between messages: it is never part of an id.
- OBX-17 AMEAS/MMEAS: a manual measurement is flagged `manual` with data class spot-check.
- OBX-8 measurement status (INV, QUES, CAL, TEST, DEMO) become quality flags; OBX-11 W (wrong)
  flags `invalid`, D (deleted) rows are skipped; MSH-11 T (training) flags `test`.
- Event identity: make_event_id(equipment, VMD code, channel code, code, observation time in ms
  [, value for text and corrected results]); stream = device id + '/' + metric code; seq = the
  observation time in integer milliseconds, so a redelivered message yields the same events.
- code/value/unit go out as sent (code_sent, value_sent, unit_sent); stage 1 normalises.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b
from typing import NamedTuple

from connectors.hl7.common import (
    DecodeContext,
    check_processing_id,
    coded,
    default_offset,
    equipment_of,
    message_time,
    patient_binding,
    read_number,
    read_time,
)
from connectors.hl7.errors import SEGMENT_SEQUENCE, TABLE_VALUE_NOT_FOUND, Hl7Error, bad_value, missing
from connectors.hl7.inventory import KnownDevice
from connectors.hl7.message import Message, field_of, repetitions, unescape
from hub.events import DataClass, Event, EventKind, Provenance, Quality

NUMERIC_TYPES = frozenset({"NM"})
TEXT_TYPES = frozenset({"ST", "TX", "FT", "DTM", "TS", "ID", "IS"})
CODED_TYPES = frozenset({"CWE", "CE", "CNE", "CF"})
SUPPORTED_TYPES = "NM, ST, TX, FT, DTM, TS, ID, IS, CWE, CE, CNE, CF"
RESULT_STATUSES = frozenset("CDFINOPRSUWX")
MEASUREMENT_STATUS = {
    "INV": Quality.INVALID,
    "QUES": Quality.QUESTIONABLE,
    "CAL": Quality.CALIBRATING,
    "TEST": Quality.TEST,
    "DEMO": Quality.DEMO,
}
EVENT_CONDITION = frozenset({"68487", "MDC_ATTR_EVT_COND"})
# enum members as module constants: member access costs ~0.5 us each on Python 3.11, on the hot path
_NUMERIC, _TEXT, _DEVICE_STATUS = EventKind.NUMERIC, EventKind.TEXT, EventKind.DEVICE_STATUS
_SETTING, _STATUS, _VITAL = DataClass.SETTING, DataClass.STATUS, DataClass.VITAL


class Node(NamedTuple):
    """A containment row (MDS, VMD or channel) with what it passes down."""

    code: str
    equipment: tuple[str | None, str | None]  # (name, EUI-64): own OBX-18, else inherited, else MSH-3
    time: float | None  # own OBX-14 or inherited (None: use OBR-7)


@dataclass
class _Group:
    """State of one OBR group while its OBX rows are read."""

    obr_time: float
    tree: dict[tuple[int, ...], Node]


def decode_observations(msg: Message, ctx: DecodeContext, *, pump_event: bool = False) -> list[Event]:
    """ORU^R01 (PCD-01), or ORU^R42 (PCD-10) with pump_event=True, -> events in message order."""
    header, delims = msg.header, msg.delims
    processing = check_processing_id(header)
    offset = default_offset(header, ctx)
    message_time(header, offset)  # required and must parse
    sender = equipment_of(header.get(3), delims)
    base_quality = frozenset({Quality.TEST}) if processing == "T" else frozenset()
    patient = patient_binding(msg) if ctx.bind_patient_from_pid else None
    reader = _RowReader(msg, ctx, sender, offset, base_quality, patient, pump_event)
    group: _Group | None = None
    obr_seq = obx_seq = 0
    for seg in msg.segments:
        name = seg[0]
        if name == "OBR":
            obr_seq += 1
            group = _Group(_obr_time(seg, obr_seq, offset, delims.component), {})
        elif name == "OBX":
            obx_seq += 1
            if group is None:
                raise Hl7Error(
                    f"OBX[{obx_seq}] comes before any OBR: PCD-01 observations belong to an OBR group",
                    code=SEGMENT_SEQUENCE,
                    segment="OBX",
                    sequence=obx_seq,
                )
            reader.read(seg, obx_seq, group)
    if obr_seq == 0:
        raise Hl7Error(
            f"{header.type_name} has no OBR segment (PCD-01 needs OBR with OBR-7 before its OBX rows)",
            code=SEGMENT_SEQUENCE,
            segment="OBR",
        )
    return reader.events


def _obr_time(seg: list[str], seq: int, offset: int, comp: str) -> float:
    value = field_of(seg, 7)
    if not value:
        raise missing("OBR", 7, "observation date/time", seq, hint="PCD-01 requires it; OBX rows inherit it")
    return read_time(value, "OBR", 7, seq, offset, comp)


def parse_path(value: str, seq: int) -> tuple[int, ...]:
    path = _PATHS.get(value)
    if path is None:
        path = _parse_path(value, seq)
        if len(_PATHS) < 8192:
            _PATHS[value] = path
    return path


_PATHS: dict[str, tuple[int, ...]] = {}


def _parse_path(value: str, seq: int) -> tuple[int, ...]:
    parts = value.strip().split(".")
    if len(parts) < 4 or not all(p.isdecimal() for p in parts):
        raise bad_value(
            "OBX",
            4,
            f"OBX[{seq}]-4 '{value}' is not an IHE PCD containment path MDS.VMD.CHANNEL.METRIC (e.g. 1.2.1.3)",
            seq,
        )
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class Shape:
    """What an OBX row says besides its value and time; cached, since a device repeats its rows."""

    path: tuple[int, ...]
    is_metric: bool
    parents: tuple[tuple[int, ...], ...]  # containment rows above, nearest first (parent_keys)
    own_key: tuple[int, ...]  # this row's key in the tree when it is not a metric (node_key)
    vmd_key: tuple[int, ...] | None  # path[:2] (None when the VMD part is 0): the VMD row whose code is in the id
    channel_key: tuple[int, ...] | None  # path[:3] (None when the channel part is 0): likewise for the channel
    code: str
    text: str
    system: str
    status: str
    value_type: str
    quality: frozenset[Quality]
    data_class: DataClass
    unit_sent: str | None
    equipment: tuple[str | None, str | None]
    mdc_code: int | None
    mdc_ref: str | None
    code_sent: str  # identifier, else text
    metric_name: str  # text, else identifier: the stream's second part
    code_system_sent: str | None
    numeric: bool


_SHAPES: dict[tuple, Shape] = {}


def read_shape(seg: list[str], seq: int, delims) -> Shape:
    key = (seg[2], seg[3], seg[4], seg[6], seg[8], seg[11], seg[17], seg[18], delims)
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _make_shape(seg, seq, delims)
        if len(_SHAPES) >= 16384:
            _SHAPES.clear()
        _SHAPES[key] = shape
    return shape


def _make_shape(seg: list[str], seq: int, delims) -> Shape:
    code, text, system = coded(seg[3], delims)
    if not code and not text:
        raise missing("OBX", 3, "observation identifier", seq)
    if not seg[4]:
        raise missing("OBX", 4, "observation sub-id", seq, hint="PCD-01 needs the MDS.VMD.CHANNEL.METRIC path")
    path = parse_path(seg[4], seq)
    status = seg[11].strip()
    if not status:
        raise missing("OBX", 11, "observation result status", seq, hint="e.g. R, F or X")
    if status not in RESULT_STATUSES:
        raise Hl7Error(
            f"OBX[{seq}]-11 result status '{status}' is not in HL7 table 0085 (C D F I N O P R S U W X)",
            code=TABLE_VALUE_NOT_FOUND,
            segment="OBX",
            sequence=seq,
            position=11,
        )
    value_type = seg[2].strip()
    if value_type and value_type not in NUMERIC_TYPES | TEXT_TYPES | CODED_TYPES:
        raise Hl7Error(
            f"OBX[{seq}]-2 value type '{value_type}' is not supported (supported: {SUPPORTED_TYPES})",
            code=TABLE_VALUE_NOT_FOUND,
            segment="OBX",
            sequence=seq,
            position=2,
        )
    quality = set()
    for flag in repetitions(seg[8], delims):
        mapped = MEASUREMENT_STATUS.get(flag.split(delims.component, 1)[0].strip())
        if mapped:
            quality.add(mapped)
    if status == "W":
        quality.add(Quality.INVALID)
    data_class = DataClass.VITAL
    for method in repetitions(seg[17], delims):
        m_code, m_text, _ = coded(method, delims)
        if m_code == "MMEAS" or m_text == "manual-measurement":
            quality.add(Quality.MANUAL)
            data_class = DataClass.SPOT_CHECK
    mdc = system == "MDC"
    return Shape(
        path=path,
        is_metric=path[3] != 0 or len(path) > 4,
        parents=parent_keys(path),
        own_key=node_key(path),
        vmd_key=path[:2] if path[1] else None,
        channel_key=path[:3] if path[2] else None,
        code=code,
        text=text,
        system=system,
        status=status,
        value_type=value_type,
        quality=frozenset(quality),
        data_class=data_class,
        unit_sent=_unit(seg[6], delims),
        equipment=equipment_of(seg[18], delims),
        mdc_code=int(code) if mdc and code.isdecimal() else None,
        mdc_ref=text if mdc and text.startswith("MDC_") else None,
        code_sent=code or text,
        metric_name=text or code,
        code_system_sent=system or None,
        numeric=value_type in NUMERIC_TYPES,
    )


class _RowReader:
    def __init__(self, msg, ctx, sender, offset, base_quality, patient, pump_event):
        self.delims, self.ctx, self.sender, self.offset = msg.delims, ctx, sender, offset
        self.base_quality, self.patient = base_quality, patient
        self.pump_event = pump_event
        self.events: list[Event] = []
        self._devices: dict[tuple, tuple[KnownDevice, Event]] = {}
        self._templates: dict[str, Event] = {}
        self._provenance = Provenance(connector=ctx.connector, raw_ref=msg.header.control_id)

    def read(self, seg: list[str], seq: int, group: _Group) -> None:
        delims = self.delims
        if len(seg) < 20:
            seg = seg + _PADDING[len(seg):]
        shape = read_shape(seg, seq, delims)
        own_time = read_time(seg[14], "OBX", 14, seq, self.offset, delims.component) if seg[14] else None
        parent = first_node(group.tree, shape.parents)
        equipment = shape.equipment
        if equipment == (None, None):
            equipment = parent.equipment if parent else self.sender
        when = own_time if own_time is not None else (parent.time if parent else None)
        if not shape.is_metric:
            group.tree[shape.own_key] = Node(shape.text or shape.code, equipment, when)
        value = seg[5]
        if not value or shape.status == "D":
            return
        if not shape.value_type:
            raise missing("OBX", 2, "value type", seq, hint="required when OBX-5 has a value")
        self.events.append(self._event(shape, seq, group, equipment, when, value))

    def _event(self, shape: Shape, seq: int, group: _Group, equipment, when, value: str) -> Event:
        time = when if when is not None else group.obr_time
        kind, value_sent, text_value = self._value(shape, value, seq)
        data_class, status_text = shape.data_class, None
        if self.pump_event:
            data_class = _SETTING if kind is _NUMERIC else _STATUS
            if shape.code in EVENT_CONDITION or shape.text in EVENT_CONDITION:
                kind, status_text = _DEVICE_STATUS, str(value_sent)
        known, template = self._devices.get(equipment) or self._device(equipment)
        ms = max(0, round(time * 1000))
        tree = group.tree
        static = (equipment[1] or equipment[0], _code_of(tree, shape.vmd_key), _code_of(tree, shape.channel_key),
                  shape.system, shape.code_sent)
        extra = value_sent if kind is not _NUMERIC or shape.status == "C" else _NO_EXTRA
        # hot path: the validated per-device template with the row's fields, without re-validation
        # (every value below was parsed and type-checked above; tests validate the output with pydantic)
        return template.with_changes(
            event_id=event_id(static, ms, extra),
            kind=kind,
            data_class=data_class,
            stream=f"{known.device.id}/{shape.metric_name}",
            seq=ms,
            device_time=time,
            code_sent=shape.code_sent,
            code_system_sent=shape.code_system_sent,
            mdc_code=shape.mdc_code,
            mdc_ref=shape.mdc_ref,
            value_sent=value_sent,
            unit_sent=shape.unit_sent,
            text=text_value,
            quality=shape.quality | self.base_quality if self.base_quality else shape.quality,
            status=status_text,
        )

    def _template(self, known: KnownDevice) -> Event:
        template = self._templates.get(known.device.id)
        if template is None:
            template = Event(
                event_id="-",
                kind=_NUMERIC,
                data_class=_VITAL,
                device=known.device,
                stream="-",
                seq=0,
                device_time=0.0,
                received_time=self.ctx.received_time,
                source=known.source,
                patient=self.patient,
                location=known.location,  # inventory only: an unknown device's claimed PV1-3 binds nothing
                provenance=self._provenance,
            )
            self._templates[known.device.id] = template
        return template

    def _value(self, shape: Shape, value: str, seq: int) -> tuple[EventKind, float | str, str | None]:
        if shape.numeric:
            return _NUMERIC, read_number(value, "OBX", 5, seq), None
        delims = self.delims
        if shape.value_type in TEXT_TYPES:
            text = unescape(value.split(delims.repetition, 1)[0], delims)
            return _TEXT, text, text
        v_code, v_text, _ = coded(value, delims)
        return _TEXT, v_code or v_text, v_text or v_code

    def _device(self, equipment: tuple[str | None, str | None]) -> tuple[KnownDevice, Event]:
        """Inventory device of the row's own or inherited equipment id (EUI-64, then name), with its
        event template; cached per message.

        Only that one: a module or device behind a gateway whose id the inventory does not know
        stays 'unknown' rather than being charted as the gateway's (another bed's) data."""
        known = self.ctx.directory.resolve([equipment[1]], [equipment[0]])
        found = self._devices[equipment] = (known, self._template(known))
        return found


_PADDING = [""] * 20

_NO_EXTRA = object()
_PREFIXES: dict[tuple, str] = {}


def event_id(static: tuple, ms: int, extra: object = _NO_EXTRA) -> str:
    """make_event_id(*static, ms[, extra]) with the static part's text cached (ids are ~half the cost
    of an event otherwise). Must equal make_event_id: tests/unit checks it."""
    prefix = _PREFIXES.get(static)
    if prefix is None:
        prefix = "".join(("" if p is None else str(p)) + "\x1f" for p in static)
        if len(_PREFIXES) >= 16384:
            _PREFIXES.clear()
        _PREFIXES[static] = prefix
    text = f"{prefix}{ms}" if extra is _NO_EXTRA else f"{prefix}{ms}\x1f{'' if extra is None else extra}"
    return blake2b(text.encode(), digest_size=16).hexdigest()


def parent_keys(path: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Containment rows above a row, nearest first (channel, VMD, MDS)."""
    keys = _PARENTS.get(path)
    if keys is None:
        keys = tuple(_parent_keys(path))
        if len(_PARENTS) < 8192:
            _PARENTS[path] = keys
    return keys


_PARENTS: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}


def _parent_keys(path: tuple[int, ...]) -> list[tuple[int, ...]]:
    mds, vmd, chan, metric = path[:4]
    is_metric = metric != 0 or len(path) > 4
    keys = []
    if is_metric and chan:
        keys.append((mds, vmd, chan))
    if (is_metric or chan) and vmd:
        keys.append((mds, vmd))
    if is_metric or chan or vmd:
        keys.append((mds,))
    return keys


def nearest_node(tree: dict[tuple[int, ...], Node], path: tuple[int, ...]) -> Node | None:
    return first_node(tree, parent_keys(path))


def first_node(tree: dict[tuple[int, ...], Node], keys: tuple[tuple[int, ...], ...]) -> Node | None:
    """The first of `keys` (parent_keys, nearest first) that has a row in the tree."""
    for key in keys:
        node = tree.get(key)
        if node is not None:
            return node
    return None


def node_key(path: tuple[int, ...]) -> tuple[int, ...]:
    mds, vmd, chan = path[:3]
    if chan:
        return (mds, vmd, chan)
    if vmd:
        return (mds, vmd)
    return (mds,)


def _code_of(tree: dict[tuple[int, ...], Node], key: tuple[int, ...] | None) -> str | None:
    """Code of the containment row at `key` (None: that level is 0 in the path, or no such row)."""
    node = tree.get(key) if key else None
    return node.code if node else None


@lru_cache(maxsize=4096)
def _unit(value: str, delims) -> str | None:
    """OBX-6 as sent: the MDC reference id (MDC_DIM_...) for MDC units, else the identifier."""
    if not value:
        return None
    code, text, system = coded(value, delims)
    if system == "MDC" and text:
        return text
    return code or text or None
