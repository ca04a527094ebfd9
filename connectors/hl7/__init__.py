"""HL7 v2 for device connectors: MLLP framing, a fast delimiter-driven parser, PCD-01 / PCD-04 / ADT
decoders producing canonical events, and a deterministic ACK builder. Everything here is pure (no
sockets, no clock); connectors/mllp.py is the I/O edge.

    framing.py    MLLP blocks out of a byte stream; framing problems reported, stream resyncs
    message.py    bytes -> segments/fields on the message's own delimiters (charset from MSH-18)
    dtm.py        HL7 DTM <-> epoch seconds (offsets honoured)
    errors.py     Hl7Error: ACK code, HL7 table 0357 code and the field, for the ERR segment
    common.py     DecodeContext and readers of shared fields (times, codes, equipment, PV1-3, PID)
    inventory.py  device identity: EUI-64 / name -> inventory device (unknown devices kept)
    pcd01.py      ORU^R01 (PCD-01) and ORU^R42 (PCD-10) -> numeric/text/device-status events
    pcd04.py      ORU^R40 (PCD-04) -> alarm events
    adt.py        ADT^A01/A02/A03/A04/A08/A11/A13 -> association events
    decode.py     message type -> decoder (what the listener calls)
    ack.py        ACK with MSA/ERR; control id and time passed in
"""
