"""File sink: the demo layout, written where no network endpoint is configured.

    DIR/hl7v2/<MSH-10>.hl7        one ORU^R01 (or ORU^R40 alarm) message per file, CR between segments
    DIR/fhir/Observation.ndjson   one Observation per line

File names are the content-derived control ids, so writing a message again rewrites the same
file; the ledger keeps an Observation from being appended twice. Routing and charting are the
ones of the sink names `hl7v2`, `pcd04` and `fhir`, as for the network sinks they stand in for.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from hub.events import Event, EventKind
from hub.rules.models import RuleSet
from hub.rules.sinks import FileSinkConfig
from hub.sinks.base import Sink
from hub.sinks.mllp import control_id_for, group_messages, render_context
from hub.store import DELIVERED, DLQ, DUPLICATE, Outcome, Store
from hub.store.records import FINAL


class _FileWriter(Sink):
    def __init__(self, rules: RuleSet, store: Store, directory: Path, *, name: str, render_ctx):
        super().__init__(rules, store, name=name)
        self.directory = directory
        self.ctx = render_ctx
        self._buffer: list[tuple[Event, Event, str | None]] = []

    def _accept(self, routed: Event, original: Event, *, replay: str | None = None) -> None:
        self._buffer.append((routed, original, replay))

    def _take(self) -> list[tuple[Event, Event, str | None]]:
        entries, self._buffer = self._buffer, []
        states = self.store.delivery_states(self.name, [r.event_id for r, _, _ in entries])
        keep, skipped = [], []
        for routed, original, replay in entries:
            state = states.get(routed.event_id)
            if state is not None and state.status in FINAL and not (replay and state.status == DLQ):
                skipped.append(Outcome(routed.event_id, self.name, DUPLICATE, detail=f"already {state.status}"))
            else:
                keep.append((routed, original, replay))
        self.store.record_outcomes(skipped)
        return keep


class Hl7FileWriter(_FileWriter):
    """ORU^R01 (name hl7v2) or ORU^R40 (name pcd04) messages, one per file."""

    async def _drain(self) -> None:
        keep = self._take()
        if self.name == "pcd04":
            groups = [(control_id_for(self.name, [r.event_id], t or ""), [r], [o]) for r, o, t in keep
                      if r.kind is EventKind.ALARM]
        else:
            groups = group_messages(self.name, [(r, o, t, None) for r, o, t in keep], 20)
        folder = self.directory / "hl7v2"
        folder.mkdir(parents=True, exist_ok=True)
        outcomes = []
        for control_id, events, originals in groups:
            try:
                text = self._render(events, control_id)
            except Exception as exc:  # noqa: BLE001 - a message that cannot be built is a data error
                self.dead_letter(originals, step="render", reason=f"{self.step}: cannot build message: {exc}")
                continue
            path = folder / f"{control_id}.hl7"
            _write_atomically(path, text.encode("utf-8"))
            outcomes += [Outcome(e.event_id, self.name, DELIVERED, control_id, detail=str(path)) for e in events]
        self.store.record_outcomes(outcomes)

    def _render(self, events: list[Event], control_id: str) -> str:
        if self.name == "pcd04":
            from hub.render.pcd04 import build_oru_r40

            return build_oru_r40(events[0], self.ctx, control_id=control_id, message_time=events[0].effective_time)
        from hub.render.hl7v2 import build_oru_r01

        return build_oru_r01(events, self.ctx, control_id=control_id,
                             message_time=max(e.effective_time for e in events))


class FhirFileWriter(_FileWriter):
    """Observations as NDJSON (the FHIR bulk-data layout)."""

    async def _drain(self) -> None:
        from hub.render.fhir import build_observation

        keep = self._take()
        lines, outcomes = [], []
        path = self.directory / "fhir" / "Observation.ndjson"
        for routed, original, _ in keep:
            try:
                lines.append(orjson.dumps(build_observation(routed, self.ctx)))
            except Exception as exc:  # noqa: BLE001
                self.dead_letter([original], step="render", reason=f"{self.step}: cannot build resource: {exc}")
                continue
            outcomes.append(Outcome(routed.event_id, self.name, DELIVERED, detail=str(path)))
        if lines:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as out:
                out.write(b"\n".join(lines) + b"\n")
                out.flush()
                os.fsync(out.fileno())
        self.store.record_outcomes(outcomes)


class FileSink:
    """The demo's file outputs, for every sink name (hl7v2, pcd04, fhir) not configured as a network sink."""

    name = "files"

    def __init__(self, rules: RuleSet, store: Store, config: FileSinkConfig, *, names=("hl7v2", "pcd04", "fhir"),
                 render_ctx=None):
        ctx = render_ctx if render_ctx is not None else render_context(rules)
        self.directory = Path(config.directory)
        self.writers: list[Sink] = [
            (FhirFileWriter if name == "fhir" else Hl7FileWriter)(rules, store, self.directory, name=name,
                                                                  render_ctx=ctx)
            for name in names
        ]

    def add(self, event: Event) -> None:
        for writer in self.writers:
            writer.add(event)

    def add_replay(self, event: Event, tag: str) -> bool:
        return any([writer.add_replay(event, tag) for writer in self.writers])  # noqa: C419 - every writer

    async def flush(self) -> None:
        for writer in self.writers:
            await writer.flush()

    async def close(self) -> None:
        for writer in self.writers:
            await writer.close()


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
