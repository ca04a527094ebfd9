"""MLLP listener against python-hl7's asyncio MLLP client: samples, concurrency, split frames, ACK-after-emit."""

from __future__ import annotations

import asyncio

import pytest
from mllp_support import (
    Recorder,
    ack_fields,
    connect,
    philips,
    running_listener,
    sample,
    send,
)

from hub.events import EventKind

pytestmark = pytest.mark.integration

EXPECTED = {  # sample -> (MSA-1, events)
    "ihe_pcd01_acme_gateway_episodic_nibp.hl7": ("AA", 4),
    "ihe_pcd01_philips_physio_monitor.hl7": ("AA", 10),
    "ihe_pcd03_accept_ack_o15.hl7": ("AR", 0),
    "ihe_pcd03_app_ack_rrg_o16_error.hl7": ("AR", 0),
    "ihe_pcd03_infusion_order_rgv_o15.hl7": ("AR", 0),
    "ihe_pcd04_bbraun_pump_occlusion_alarm_end.hl7": ("AA", 1),
    "ihe_pcd04_bbraun_pump_occlusion_alarm_start.hl7": ("AA", 1),
    "ihe_pcd10_pump_delivery_start_event.hl7": ("AA", 19),
}


def test_every_sample_message_gets_its_ack_on_one_connection():
    async def scenario():
        recorder = Recorder()
        async with running_listener(recorder) as listener:
            reader, writer = await connect(listener.port)
            results = {}
            for name in sorted(EXPECTED):
                before = len(recorder.events)
                ack = ack_fields(await send(reader, writer, sample(name)))
                results[name] = (ack["code"], len(recorder.events) - before)
                if ack["code"] == "AR":
                    assert ack["err_code"] == "200" and "unsupported message type" in ack["text"]
            writer.close()
        return results, recorder

    results, recorder = asyncio.run(scenario())
    assert results == EXPECTED
    assert sum(1 for e in recorder.events if e.kind is EventKind.ALARM) == 2


def test_eight_concurrent_connections_many_messages_each():
    per_connection = 25

    async def client(port: int, n: int, recorder: Recorder) -> list[tuple[str, str, int]]:
        reader, writer = await connect(port)
        out = []
        for i in range(per_connection):
            control_id = f"C{n}-{i}"
            ack = ack_fields(await send(reader, writer, philips(control_id, minute=n * 100 + i)))
            out.append((control_id, ack["code"], len(recorder.by_message().get(control_id, []))))
        writer.close()
        return out

    async def scenario():
        recorder = Recorder(yields=2)
        async with running_listener(recorder) as listener:
            results = await asyncio.gather(*(client(listener.port, n, recorder) for n in range(8)))
            health = listener.health()
        return [r for rs in results for r in rs], recorder, health

    results, recorder, health = asyncio.run(scenario())
    assert len(results) == 8 * per_connection
    # each AA arrived only once all 10 events of that very message had been emitted
    assert all(code == "AA" and seen == 10 for _, code, seen in results)
    assert len(recorder.events) == 8 * per_connection * 10
    assert len({e.event_id for e in recorder.events}) == len(recorder.events)
    assert health["messages"] == 8 * per_connection and health["rejected"] == 0


def test_frame_split_byte_by_byte_and_pipelined_frames():
    async def scenario():
        recorder = Recorder()
        async with running_listener(recorder) as listener:
            reader, writer = await connect(listener.port)
            framed = b"\x0b" + philips("SPLIT") + b"\x1c\r"
            for i in range(len(framed)):
                writer.write(framed[i : i + 1])
                await writer.drain()
            first = ack_fields(await reader.readmessage())
            writer.write(b"".join(b"\x0b" + philips(f"P{i}", minute=i) + b"\x1c\r" for i in range(20)))
            await writer.drain()
            pipelined = [ack_fields(await reader.readmessage()) for _ in range(20)]
            writer.close()
        return first, pipelined

    first, pipelined = asyncio.run(scenario())
    assert first == {"code": "AA", "control_id": "SPLIT"}
    assert [a["control_id"] for a in pipelined] == [f"P{i}" for i in range(20)]
    assert {a["code"] for a in pipelined} == {"AA"}


def test_emit_failure_answers_ae_and_the_resend_is_accepted():
    async def scenario():
        recorder = Recorder()
        async with running_listener(recorder) as listener:
            reader, writer = await connect(listener.port)
            recorder.failing = True
            refused = ack_fields(await send(reader, writer, philips("RETRY")))
            recorder.failing = False
            accepted = ack_fields(await send(reader, writer, philips("RETRY")))
            writer.close()
        return refused, accepted, recorder

    refused, accepted, recorder = asyncio.run(scenario())
    assert refused["code"] == "AE" and refused["err_code"] == "207" and "resend" in refused["text"]
    assert accepted == {"code": "AA", "control_id": "RETRY"}
    assert len(recorder.events) == 10


def test_adt_feed_over_the_same_listener():
    adt = (
        b"MSH|^~\\&|EPIC|HOSP|DEVSYNC|HOSP|20260102080000+0000||ADT^A01^ADT_A01|ADT1|P|2.5.1\r"
        b"EVN|A01|20260102075500\rPID|||MRN42^^^HOSP^MR||Doe^Jane\rPV1||I|ICU1^^BED01||||||||||||||||V1\r"
    )

    async def scenario():
        recorder = Recorder()
        async with running_listener(recorder) as listener:
            reader, writer = await connect(listener.port)
            ack = ack_fields(await send(reader, writer, adt))
            writer.close()
        return ack, recorder

    ack, recorder = asyncio.run(scenario())
    assert ack == {"code": "AA", "control_id": "ADT1"}
    (event,) = recorder.events
    assert event.association.action == "bind" and event.association.location == "ICU1-BED01"
    assert event.association.patient_id == "MRN42"


def test_connection_limit_and_idle_timeout():
    async def scenario():
        recorder = Recorder()
        async with running_listener(recorder, max_connections=1, idle_timeout_s=0.3) as listener:
            reader, writer = await connect(listener.port)
            first = ack_fields(await send(reader, writer, philips("LIM1")))
            extra_reader, extra_writer = await connect(listener.port)
            refused = await extra_reader.read()  # closed at once: over max_connections
            idle_end = await reader.read()  # nothing sent for idle_timeout_s: the listener closes it
            reader, writer = await connect(listener.port)  # the slot is free again
            again = ack_fields(await send(reader, writer, philips("LIM2")))
            writer.close()
            extra_writer.close()
        return first, refused, idle_end, again

    first, refused, idle_end, again = asyncio.run(scenario())
    assert first["code"] == "AA" and again["code"] == "AA"
    assert refused == b"" and idle_end == b""


def test_a_decoder_bug_answers_ae_and_keeps_the_connection(monkeypatch):
    import connectors.mllp as mllp_module

    real = mllp_module.decode_message

    def broken(message, context):
        if message.header.control_id == "BOOM":
            raise IndexError("simulated decoder bug")
        return real(message, context)

    monkeypatch.setattr(mllp_module, "decode_message", broken)

    async def scenario():
        recorder = Recorder()
        async with running_listener(recorder) as listener:
            reader, writer = await connect(listener.port)
            boom = ack_fields(await send(reader, writer, philips("BOOM")))
            fine = ack_fields(await send(reader, writer, philips("FINE")))
            writer.close()
        return boom, fine

    boom, fine = asyncio.run(scenario())
    assert boom["code"] == "AE" and boom["err_code"] == "207" and "IndexError" in boom["text"]
    assert fine == {"code": "AA", "control_id": "FINE"}
