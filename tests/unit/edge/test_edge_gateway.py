"""Gateway wiring without the network: group commit, provenance, task supervision."""

from __future__ import annotations

import asyncio

from edge_buffer.gateway import Gateway
from edge_buffer.upstream import SendResult
from hub.events import DataClass
from hub.rules.edge import EdgeRules
from hub.rules.models import RuleSet


class NeverUp:
    """An upstream that is never reachable (the forwarder keeps backing off)."""

    kind, target = "fake", "fake://down"

    async def connect(self):
        from edge_buffer.errors import UpstreamError

        raise UpstreamError("fake://down: unreachable")

    async def send(self, batch):
        return SendResult(error="unreachable")

    async def close(self):
        pass


class Broken(NeverUp):
    async def connect(self):
        raise RuntimeError("bug in an upstream")


def run_gateway(tmp_path, upstream, body):
    async def main():
        settings = EdgeRules(gateway_id="edge-unit", health_port=0, backoff_initial_s=0.05, backoff_max_s=0.1)
        gateway = Gateway(RuleSet(edge=settings), tmp_path / "b.db", upstream, [])
        await gateway.start()
        try:
            return await body(gateway)
        finally:
            await gateway.stop()

    return asyncio.run(main())


def test_concurrent_emits_share_commits_and_get_the_gateway_id(tmp_path, event_factory):
    async def body(gateway):
        events = [event_factory(DataClass.VITAL, i) for i in range(300)]
        await asyncio.gather(*(gateway.emit(e) for e in events))
        rows = gateway.queue.lease(1000)
        return rows, gateway.health()

    rows, health = run_gateway(tmp_path, NeverUp(), body)
    assert [r.seq for r in rows] == list(range(300))  # emit order is commit order
    assert all(b'"gateway":"edge-unit"' in r.payload for r in rows)
    assert health["status"] == "degraded" and health["buffer"]["depth"] == 300
    assert "unreachable" in health["upstream"]["last_error"]


def test_a_dead_task_turns_health_down(tmp_path):
    async def body(gateway):
        for _ in range(50):
            if gateway.health()["status"] == "down":
                break
            await asyncio.sleep(0.02)
        return gateway.health()

    health = run_gateway(tmp_path, Broken(), body)
    assert health["status"] == "down" and "bug in an upstream" in health["error"]
