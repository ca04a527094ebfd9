"""Helpers for the MLLP listener tests: a recording emit target, a running listener, sample messages."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

import hl7
from hl7.mllp import open_hl7_connection

from connectors.hl7.inventory import DeviceDirectory
from connectors.mllp import MllpConnector
from hub.events import Event
from hub.rules.connectors import MllpListener
from hub.rules.load import load_rules

SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "hl7v2"
RULES = Path(__file__).resolve().parents[3] / "rules"
PHILIPS = "ihe_pcd01_philips_physio_monitor.hl7"


class Recorder:
    """The emit target: records accepted events; can be made to fail (downstream outage)."""

    def __init__(self, yields: int = 0):
        self.events: list[Event] = []
        self.failing = False
        self.yields = yields  # give the loop a chance to run others inside emit (exposes early ACKs)

    async def emit(self, event: Event) -> None:
        for _ in range(self.yields):
            await asyncio.sleep(0)
        if self.failing:
            raise ConnectionError("downstream queue unavailable")
        self.events.append(event)

    def by_message(self) -> dict[str, list[Event]]:
        out: dict[str, list[Event]] = {}
        for event in self.events:
            out.setdefault(event.provenance.raw_ref, []).append(event)
        return out


@asynccontextmanager
async def running_listener(recorder: Recorder, **config):
    connector = MllpConnector(MllpListener(port=0, **config), directory_for_tests())
    await connector.start(recorder.emit)
    try:
        yield connector
    finally:
        await connector.stop()


def directory_for_tests() -> DeviceDirectory:
    """The inventory of the shipped demo rules (rules/ward.yaml)."""
    return DeviceDirectory(load_rules(RULES))


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def philips(control_id: str, minute: int = 0) -> bytes:
    """The Philips PCD-01 sample with its own MSH-10 and OBR-7 (so every message has its own events)."""
    text = sample(PHILIPS).decode("latin-1")
    text = text.replace("HP0122182658686QQ000CND119C0WS61", control_id)
    stamp = f"{minute // 60 % 60:02d}{minute % 60:02d}"
    text = text.replace("|20150122182656\r", f"|2015012218{stamp}\r").replace("|20150122115000", f"|2015012211{stamp}")
    return text.encode("latin-1")


async def connect(port: int, **kwargs):
    return await open_hl7_connection("127.0.0.1", port, encoding="utf-8", **kwargs)


async def send(reader, writer, payload: bytes) -> hl7.Message:
    writer.writeblock(payload)
    await writer.drain()
    return await reader.readmessage()


def ack_fields(ack: hl7.Message) -> dict:
    """MSA-1, MSA-2 and (when present) ERR-2, ERR-3.1 and ERR-8 of an ACK, as plain strings."""
    msa = ack.segment("MSA")
    out = {"code": str(msa[1]), "control_id": str(msa[2])}
    try:
        err = ack.segment("ERR")
    except KeyError:
        return out
    out.update({"where": str(err[2]), "err_code": str(err[3][0][0]), "text": str(err[8])})
    return out
