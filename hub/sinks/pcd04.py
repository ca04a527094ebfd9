"""PCD-04 alarm sink: IHE PCD ACM alarm reports (ORU^R40) to an alarm manager over MLLP.

The alarm fast path: every alarm event (start, update, end) becomes its own message and is
queued on its patient's lane the moment it is added, not at the next batch or flush. MSH-10 is
derived from the alarm event id, so a resend is recognisable without a write-ahead ledger row
(which would put a database commit in front of every alarm). Alarms without a patient binding
are still sent (the alarm manager routes by location); they are partitioned by device.
"""

from __future__ import annotations

from hub.events import Event, EventKind
from hub.sinks.mllp import MllpSink, control_id_for


class Pcd04Sink(MllpSink):
    name = "pcd04"
    write_ahead = False
    needs_patient = False

    def _accept(self, routed: Event, original: Event, *, replay: str | None = None) -> None:
        if routed.kind is not EventKind.ALARM or routed.alarm is None:
            self.dead_letter([original], step="route",
                             reason=f"{self.step}: event of kind '{routed.kind}' routed to the alarm sink; "
                                    "route only the alarm data class here")
            return
        super()._accept(routed, original, replay=replay)
        self._cut()  # fast path: no batching

    def _group(self, keep) -> list[tuple[str, list[Event], list[Event]]]:
        return [(control_id_for(self.name, [routed.event_id], replay or ""), [routed], [original])
                for routed, original, replay, _previous in keep]

    def render(self, events: list[Event], control_id: str) -> str:
        from hub.render.pcd04 import build_oru_r40

        alarm = events[0]
        return build_oru_r40(alarm, self.ctx, control_id=control_id, message_time=alarm.effective_time)
