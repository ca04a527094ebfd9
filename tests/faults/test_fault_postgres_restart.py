"""PostgreSQL (the hub's store and delivery ledger) stops for about 10 s under steady load.

The test starts a PostgreSQL server of its own (initdb + pg_ctl on a free port; the machine's
shared server, which other tests use, is never touched), opens the store on it as the product
does (open_store runs the alembic migrations), and runs the embedded runtime with the HL7 v2
sink to python-hl7's MLLP server as the EHR while a ward feed keeps coming. Mid-stream the
database is stopped (`pg_ctl stop -m fast`: sessions terminated), left down ~10 s, and started
again. The hub must log a clear error, hold its input meanwhile and resume by itself; at the end
every reading reached the EHR exactly once, in order, and the ledger's delivered rows equal what
the EHR charted.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from fault_report import report
from sink_faults_support import (
    MLLP_SETTINGS,
    Hub,
    PrivatePostgres,
    WardFeed,
    catch_up_s,
    checkpoint_failures,
    exactly_once_counts,
)

from hub.store import open_store
from hub.store.migrate import current_revision, head_revision
from tests.support.mllp_ehr import MllpEhr

pytestmark = [pytest.mark.integration, pytest.mark.faults]

BEFORE_S, DOWN_S, AFTER_S = 10.0, 10.0, 12.0


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    try:
        server.init().start()
        yield server
    finally:
        server.destroy()


def database_errors(caplog) -> list[str]:
    return [message for message in checkpoint_failures(caplog) if "OperationalError" in message]


@pytest.mark.timeout(200)
def test_postgres_stopped_for_ten_seconds_under_load_every_reading_charted_once(private_postgres, caplog):
    """Proves: losing the database mid-stream pauses the hub with a logged error instead of killing
    it or losing anything; after the restart it resumes on its own, charts every reading exactly once
    and its ledger agrees with the EHR."""
    caplog.set_level(logging.INFO, logger="devsync.runtime")
    server = private_postgres

    async def scenario():
        ehr = await MllpEhr().start()
        store = open_store(server.url)
        assert current_revision(store.engine) == head_revision()  # migrated as `devsync db upgrade` would
        hub = Hub.start(store, ehr.port, **MLLP_SETTINGS)
        feed = WardFeed(hub.runtime)
        try:
            await feed.bind_patients()
            feeding = asyncio.create_task(feed.run_for(BEFORE_S + DOWN_S + AFTER_S))
            await asyncio.sleep(BEFORE_S)
            charted_before = len(ehr.charted)
            stopping_at = time.monotonic()
            await asyncio.to_thread(server.stop, "fast")
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(server.start)
            downtime, restarted_at = time.monotonic() - stopping_at, time.time()
            assert not hub.task.done(), "the runtime died while the database was down"
            await feeding
            await hub.stop()
        finally:
            await ehr.stop()
            store.close()
        return ehr, hub, feed, {"db_downtime_s": round(downtime, 1),
                                "catch_up_s": round(catch_up_s(hub, restarted_at), 1),
                                "charted_before_restart": charted_before,
                                "database_errors_logged": len(database_errors(caplog))}

    ehr, hub, feed, figures = asyncio.run(scenario())
    assert figures["charted_before_restart"] > 0
    assert figures["database_errors_logged"] >= 1  # the pause was reported, with the database's error
    report(exactly_once_counts("postgres-restart-under-load", feed, ehr, hub, figures))
