"""`devsync audit show EVENT_ID`: the whole story of one reading.

Raw and normalised copies, every conflict decision it took part in (candidates, policy,
winner, why), and its fate at every sink (held back and why, sent under which control id,
delivered with which ACK or response, dead-lettered and why, replayed).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from hub.commands.db import add_store_arguments, open_store_from_args, report_errors


def register(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="audit trail of readings")
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the whole story of one reading")
    show.add_argument("event_id", metavar="EVENT_ID")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_store_arguments(show)
    show.set_defaults(func=report_errors(run_show))


def run_show(args: argparse.Namespace) -> int:
    store = open_store_from_args(args)
    story = store.story(args.event_id)
    store.close()
    if not (story.copies or story.decisions or story.ledger or story.parked or story.dead_letters):
        print(f"event {args.event_id}: nothing recorded (check the id; the ledger knows only events that "
              "reached the resolver or a sink)")
        return 1
    if args.json:
        print(json.dumps(story_as_dict(story), indent=2, default=str))
    else:
        print(format_story(story))
    return 0


def story_as_dict(story) -> dict:
    return {
        "event_id": story.event_id,
        "copies": {stage: json.loads(text) for stage, text in story.copies.items()},
        "decisions": story.decisions,
        "ledger": story.ledger,
        "parked": story.parked and {k: v for k, v in story.parked.items() if k != "event"},
        "dead_letters": [{k: v for k, v in vars_of(d).items() if k != "event"} for d in story.dead_letters],
    }


def vars_of(obj) -> dict:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _time(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z" if epoch else "-"


def format_story(story) -> str:
    lines = [f"event {story.event_id}"]
    for stage, text in story.copies.items():
        event = json.loads(text)
        value = next((event.get(k) for k in ("value", "text", "value_sent") if event.get(k) is not None), None)
        lines.append(f"  {stage}: {event.get('metric') or event.get('code_sent')} = "
                     f"{value} {event.get('unit') or event.get('unit_sent') or ''} from {event['device']['id']} at {_time(event.get('corrected_time') or event.get('device_time'))}"
                     f" quality={','.join(event.get('quality') or []) or 'ok'}")
    for decision in story.decisions:
        winner = "this reading" if decision.get("winner_event_id") == story.event_id else decision.get("winner_event_id")
        lines.append(f"  decision {decision['decision_id']}: {decision['metric']} by {decision['policy']}, "
                     f"{len(decision['candidates'])} candidate(s), winner {winner}: {decision['reason']}"
                     + (" [manual review]" if decision.get("review") else ""))
    if story.parked:
        lines.append(f"  parked at {_time(story.parked['parked_at'])}: {story.parked['reason']}"
                     + (f" (released {_time(story.parked['released_at'])})" if story.parked["released_at"] else ""))
    for row in story.ledger:
        extra = " ".join(p for p in (f"control_id={row['control_id']}" if row["control_id"] else "",
                                     row["reason"] or "", row["detail"] or "") if p)
        lines.append(f"  {_time(row['at'])} {row['sink']}: {row['status']} {extra}".rstrip())
    for letter in story.dead_letters:
        lines.append(f"  dlq #{letter.id} ({letter.sink}, step {letter.step}, {letter.status}): {letter.reason}")
    return "\n".join(lines)
