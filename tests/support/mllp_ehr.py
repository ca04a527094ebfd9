"""An EHR stand-in for the HL7 sink tests: python-hl7's asyncio MLLP server answering ACKs.

It parses every message with python-hl7, answers AA (or what `script` says for that message),
and records what it charted. Like a real interface engine it deduplicates by MSH-10: a resend
of a control id it already accepted is answered AA again but charted once (`charted`), while
`received` keeps every arrival so the tests can see the resends.

Script actions, chosen per received message by `script(control_id, arrival_number)`:
    ("AA",)                   accept
    ("AE", text) / ("AR", t)  reject with an ERR segment carrying the text
    ("delay", s)              wait s seconds, then AA on the same connection (a late ACK)
    ("drop",)                 close the connection without answering
    ("stray", other_id)       first answer an ACK for another control id, then AA
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import hl7
import hl7.mllp


@dataclass
class Arrival:
    control_id: str
    patient_id: str
    message: str
    action: str


@dataclass
class MllpEhr:
    script: object = None  # callable(control_id, arrival_number) -> tuple
    received: list[Arrival] = field(default_factory=list)
    charted: dict[str, Arrival] = field(default_factory=dict)  # control id -> first accepted arrival
    order: list[str] = field(default_factory=list)  # control ids in charting order
    server: asyncio.AbstractServer | None = None
    port: int = 0
    _writers: set = field(default_factory=set)

    async def start(self, ssl_context=None) -> MllpEhr:
        self.server = await hl7.mllp.start_hl7_server(self._client, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the listener and abort open connections (a TLS peer could otherwise hold the
        server in wait_closed() for the SSL shutdown timeout)."""
        self.server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        try:
            await asyncio.wait_for(self.server.wait_closed(), 5)
        except TimeoutError:
            pass

    async def _client(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                control_id = str(message.segment("MSH")(10))
                action = (self.script or (lambda cid, n: ("AA",)))(control_id, len(self.received))
                patient = _patient_id(message)
                arrival = Arrival(control_id, patient, str(message), action[0])
                self.received.append(arrival)
                if action[0] == "drop":
                    writer.close()
                    return
                if action[0] == "delay":
                    await asyncio.sleep(action[1])
                if action[0] == "stray":
                    writer.writeblock(_with_msa2(message.create_ack("AA"), action[1]).encode())
                code = action[0] if action[0] in ("AE", "AR") else "AA"
                ack = message.create_ack(code, message_id="ACK" + control_id[:16])
                text = str(ack)
                if code != "AA":
                    text += f"\rERR|||207^Application internal error^HL70357|E||||{action[1]}"
                elif control_id not in self.charted:
                    self.charted[control_id] = arrival  # not received[-1]: other connections arrive meanwhile
                    self.order.append(control_id)
                writer.writeblock(text.encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def _with_msa2(ack, other_control_id: str) -> str:
    segments = str(ack).split("\r")
    return "\r".join(
        s if not s.startswith("MSA") else "|".join(s.split("|")[:2] + [other_control_id] + s.split("|")[3:])
        for s in segments
    )


def _patient_id(message) -> str:
    try:
        return str(message.segment("PID")(3)(1)(1))
    except (KeyError, IndexError):
        return ""
