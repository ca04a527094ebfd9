"""`devsync dlq replay`: a rule error sends observations to the DLQ; the rule is fixed; replay
delivers them exactly once (and a second replay finds nothing). Also: an EHR rejection (AE),
replayed after the EHR was fixed, goes out under a new control id, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
from pathlib import Path

from hub.cli import main
from hub.rules.load import load_rules
from hub.sinks import build_sinks, sinks_by_name
from hub.sinks.dlq import replay_dead_letters
from hub.sinks.mllp import MllpSink, control_id_for
from hub.store import DELIVERED, open_store
from tests.support.fhir_server import FhirTestServer
from tests.support.mllp_ehr import MllpEhr
from tests.support.sink_events import REPO, T0, rules_with, vital

ROUTING = """version: 1
routing:
  - sink: fhir
    data_classes: [vital]
    codes: {codes}
"""
SINKS = """version: 1
sinks:
  fhir: {{base_url: "{base_url}", max_batch_delay_s: 0.05}}
"""


def write_rules(folder: Path, base_url: str, codes: str) -> Path:
    folder.mkdir(exist_ok=True)
    for path in (REPO / "rules").glob("*.yaml"):
        if path.name != "routing.yaml":
            shutil.copy(path, folder / path.name)
    (folder / "routing.yaml").write_text(ROUTING.format(codes=codes))
    (folder / "sinks.yaml").write_text(SINKS.format(base_url=base_url))
    return folder


async def devsync(*argv: str) -> tuple[int, str]:
    """Run the CLI in a worker thread (it runs its own event loop) while the EHR serves here."""
    def run() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(list(argv))
        return code, out.getvalue()
    return await asyncio.to_thread(run)


def test_rule_error_to_dlq_fix_replay_exactly_once(tmp_path):
    """The EHR is routed LOINC codes only; perfusion index has no LOINC code, so its readings go to
    the DLQ with the rule at fault. The engineer routes them with MDC codes too; replay delivers."""
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    perfusion = [vital("MRN0001", metric="perfusion-index", value=2.0 + i, t=T0 + i, seq=i) for i in range(4)]
    heart_rate = [vital("MRN0001", metric="heart-rate", value=70.0 + i, t=T0 + i, seq=i) for i in range(4)]
    rules_dir = tmp_path / "rules"

    async def scenario():
        server = await FhirTestServer().start()
        broken = load_rules(write_rules(rules_dir, server.base_url, codes="loinc"))
        store = open_store(db)
        sinks = build_sinks(broken, store)
        for event in heart_rate + perfusion:
            for sink in sinks:
                sink.add(event)
        for sink in sinks:
            await sink.flush()
            await sink.close()
        store.close()
        delivered_before = len(server.observations())
        listed = await devsync("dlq", "list", "--rules", str(rules_dir), "--db", db)
        write_rules(rules_dir, server.base_url, codes="mdc+loinc")  # the integration engineer fixes the route
        first = await devsync("dlq", "replay", "--all", "--rules", str(rules_dir), "--db", db)
        second = await devsync("dlq", "replay", "--all", "--rules", str(rules_dir), "--db", db)
        status = await devsync("status", "--json", "--db", db)
        story = await devsync("audit", "show", perfusion[0].event_id, "--db", db)
        await server.stop()
        return server, delivered_before, listed, first, second, status, story

    server, delivered_before, listed, first, second, status, story = asyncio.run(scenario())
    assert delivered_before == 4  # the heart rates went through at once
    assert listed[0] == 0 and listed[1].count("routing[0].codes: this sink takes LOINC codes only, but metric "
                                              "'perfusion-index' has no LOINC code") == 4
    assert first[0] == 0 and "4 delivered, 0 failed again, 0 skipped" in first[1]
    assert second[0] == 0 and "0 delivered, 0 failed again, 0 skipped" in second[1]
    identifiers = sorted(i["value"] for o in server.observations() for i in o["identifier"])
    assert identifiers == sorted(e.event_id for e in heart_rate + perfusion)  # each exactly once
    assert server.matched == 0  # nothing was even sent twice
    counts = {row["sink"]: row for row in json.loads(status[1])["sinks"]}
    assert counts["fhir"]["in"] == 8 and counts["fhir"][DELIVERED] == 8
    assert json.loads(status[1])["dlq_open"] == 0
    assert story[0] == 0 and "fhir: dlq" in story[1] and "fhir: delivered" in story[1] and "replayed" in story[1]


def test_ehr_rejection_replayed_after_the_ehr_is_fixed_goes_out_once_under_a_new_control_id(store):
    events = [vital(p, value=70.0, t=T0, seq=0) for p in ("MRN0001", "MRN0002")]
    rejected_id = control_id_for("hl7v2", [events[0].event_id])
    fixed = {"done": False}

    def script(control_id, _n):
        if control_id == rejected_id and not fixed["done"]:
            return ("AE", "unknown patient MRN0001")
        return ("AA",)

    async def scenario():
        ehr = await MllpEhr(script=script).start()
        rules = rules_with(sinks={"hl7v2": {"host": "127.0.0.1", "port": ehr.port, "max_batch_delay_s": 0.05}})
        sink = MllpSink(rules, store, rules.sinks.hl7v2)
        for event in events:
            sink.add(event)
        await sink.flush()
        await sink.close()
        letters = store.dead_letters()
        fixed["done"] = True  # the EHR team registers the patient
        sinks = build_sinks(rules, store)
        report = await replay_dead_letters(store, sinks_by_name(sinks), letters)
        again = await replay_dead_letters(store, sinks_by_name(sinks), store.dead_letters(status=None))
        for s in sinks:
            await s.close()
        await ehr.stop()
        return ehr, letters, report, again

    ehr, letters, report, again = asyncio.run(scenario())
    assert [d.event_id for d in letters] == [events[0].event_id] and "unknown patient MRN0001" in letters[0].reason
    assert report.delivered == [letters[0].id] and not report.failed
    assert again.delivered == [] and again.skipped == [(letters[0].id, "already replayed")]
    new_id = control_id_for("hl7v2", [events[0].event_id], f"dlq{letters[0].id}")
    assert set(ehr.charted) == {control_id_for("hl7v2", [events[1].event_id]), new_id}
    assert [a.control_id for a in ehr.received].count(new_id) == 1
    state = store.delivery_states("hl7v2", [events[0].event_id])[events[0].event_id]
    assert (state.status, state.control_id) == (DELIVERED, new_id)
