#!/usr/bin/env python3
"""An independent peer for the cloud-edge channel protocol, version 1.

Written from the wire specification (docs/protocol.md) alone: it has its own encoder and decoder
and shares no code with the Swift implementation, so a test that passes against it checks the
specification rather than one codec against itself.

Modes (all connect over TLS 1.3 with a client certificate, then exchange HELLOs):
  exchange   sends N reliable MESSAGE frames on lane 2 (events), batched several to a WebSocket
             message and within lane credit; expects an ACK covering all of them and N echoes
             (reliable, sequence 1..N, content b"echo:" + the original content), acknowledging
             them. Prints {"sent": N, "received": N, "acked": <ack seq>}.
  malformed  sends a frame of unknown type 0x7F; expects GOAWAY protocolError (1), then close.
  oversize   sends a MESSAGE header declaring a 2^30-byte body; expects GOAWAY limitExceeded (2),
             then close. Both print {"goaway": <code>, "reason": "..."}.
--self-test  round-trips every frame type through the codec and checks the refusal rules (no
             network) and exits 0.

Exit status 0 on success, 1 with a message on stderr on any mismatch or after 30 s.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from dataclasses import dataclass, field

KIB = 1024
MIB = 1024 * 1024

# Frame types.
HELLO, MESSAGE, ACK, CREDIT, PING, PONG, GOAWAY = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
FRAME_NAMES = {HELLO: "HELLO", MESSAGE: "MESSAGE", ACK: "ACK", CREDIT: "CREDIT", PING: "PING", PONG: "PONG", GOAWAY: "GOAWAY"}

# Lanes.
LANE_CONTROL, LANE_STATE, LANE_EVENTS, LANE_REQUEST, LANE_BULK = 0, 1, 2, 3, 4
DATA_LANES = (LANE_STATE, LANE_EVENTS, LANE_REQUEST, LANE_BULK)

# Delivery classes.
BEST_EFFORT, RELIABLE, STATE = 0, 1, 2

# GOAWAY codes.
NORMAL, PROTOCOL_ERROR, LIMIT_EXCEEDED, UNSUPPORTED_VERSION, UNAUTHORIZED = 0, 1, 2, 3, 4
DEAD_PEER, REPLACED, SHUTTING_DOWN, INTERNAL_ERROR = 5, 6, 7, 8

PROTOCOL_VERSION = 1
VARINT_MAX = (1 << 62) - 1
FLAG_SYNC, FLAG_PARENT = 0x01, 0x02
ZERO_ID = bytes(16)
INITIAL_WINDOW = 1 * MIB


@dataclass(frozen=True)
class Limits:
    """Receiver-side limits, with the protocol's defaults."""
    max_frame_length: int = 16 * MIB + 64 * KIB
    lane_count: int = 16
    max_string_length: int = 4096
    max_content_length: int = 16 * MIB
    max_node_id_length: int = 253
    max_resume_points: int = 256
    max_capabilities: int = 32
    max_capability_length: int = 64
    max_state_key_length: int = 1024
    max_goaway_reason_length: int = 1024


class WireError(Exception):
    """Input that breaks the protocol; `code` is the GOAWAY code that answers it (1 or 2)."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class PeerFailure(Exception):
    """The peer under test did something the specification does not allow, or not in time."""


# ---------------------------------------------------------------------------------------------
# Primitives

def encode_varint(value: int, width: int | None = None) -> bytes:
    """QUIC varint (RFC 9000 §16); `width` forces a (possibly non-minimal) length of 1, 2, 4 or 8."""
    if not 0 <= value <= VARINT_MAX:
        raise ValueError(f"varint out of range: {value}")
    if width is None:
        width = 1 if value < 1 << 6 else 2 if value < 1 << 14 else 4 if value < 1 << 30 else 8
    prefix = {1: 0b00, 2: 0b01, 4: 0b10, 8: 0b11}[width]
    if value >= 1 << (8 * width - 2):
        raise ValueError(f"{value} does not fit a {width}-byte varint")
    return (value | prefix << (8 * width - 2)).to_bytes(width, "big")


def peek_varint(data, pos: int) -> tuple[int, int] | None:
    """(value, width) of the varint at `pos`, or None if `data` ends inside it."""
    if pos >= len(data):
        return None
    width = 1 << (data[pos] >> 6)
    if pos + width > len(data):
        return None
    raw = int.from_bytes(bytes(data[pos:pos + width]), "big")
    return raw & ((1 << (8 * width - 2)) - 1), width


def encode_str(text: str) -> bytes:
    data = text.encode("utf-8")
    return encode_varint(len(data)) + data


def encode_id(value: bytes) -> bytes:
    if len(value) != 16:
        raise ValueError("an id is 16 bytes")
    return bytes(value)


class Reader:
    """Reads primitives from one frame body; every shortfall is a protocol error naming the field."""

    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int, what: str) -> bytes:
        if count > self.remaining:
            raise WireError(PROTOCOL_ERROR, f"input ended inside {what}")
        chunk = bytes(self.data[self.pos:self.pos + count])
        self.pos += count
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        found = peek_varint(self.data, self.pos)
        if found is None:
            raise WireError(PROTOCOL_ERROR, f"input ended inside {what}")
        value, width = found
        self.pos += width
        return value

    def ident(self, what: str) -> bytes:
        return self.take(16, what)

    def string(self, what: str, limit: int, limit_name: str) -> str:
        length = self.varint(what)
        if length > limit:
            raise WireError(LIMIT_EXCEEDED, f"{what} is {length}, above the limit {limit_name}={limit}")
        raw = self.take(length, what)
        try:
            return raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise WireError(PROTOCOL_ERROR, f"{what} is not valid UTF-8") from None


# ---------------------------------------------------------------------------------------------
# Message and frames

@dataclass
class Message:
    """The application message (KubeEdge beehive fields)."""
    id: bytes
    parent_id: bytes | None = None
    sync: bool = False
    timestamp: int = 0
    resource_version: str = ""
    type: str = ""
    source: str = ""
    destination: str = ""
    group: str = ""
    operation: str = ""
    resource: str = ""
    content: bytes = b""


@dataclass
class Hello:
    version: int
    node_id: str
    session_id: bytes
    peer_session_id: bytes = ZERO_ID
    resume_points: list[tuple[int, int]] = field(default_factory=list)  # (lane, delivered)
    capabilities: list[str] = field(default_factory=list)


@dataclass
class MessageFrame:
    lane: int
    sequence: int
    delivery_class: int
    message: Message
    state_key: str | None = None
    body_length: int = field(default=0, compare=False)  # set by the decoder: the credit it costs


@dataclass
class Ack:
    lane: int
    sequence: int


@dataclass
class Credit:
    lane: int
    amount: int


@dataclass
class Ping:
    opaque: bytes


@dataclass
class Pong:
    opaque: bytes


@dataclass
class GoAway:
    code: int
    reason: str


def encode_message(message: Message) -> bytes:
    flags = (FLAG_SYNC if message.sync else 0) | (FLAG_PARENT if message.parent_id is not None else 0)
    out = bytearray([flags])
    out += encode_id(message.id)
    if message.parent_id is not None:
        out += encode_id(message.parent_id)
    out += encode_varint(message.timestamp)
    for text in (message.resource_version, message.type, message.source, message.destination,
                 message.group, message.operation, message.resource):
        out += encode_str(text)
    out += encode_varint(len(message.content))
    out += message.content
    return bytes(out)


def decode_message(reader: Reader, limits: Limits) -> Message:
    flags = reader.u8("message.flags")
    if flags & ~(FLAG_SYNC | FLAG_PARENT):
        raise WireError(PROTOCOL_ERROR, f"message.flags: unknown flag bits 0x{flags & ~0x03:02x}")
    ident = reader.ident("message.id")
    parent = reader.ident("message.parentID") if flags & FLAG_PARENT else None
    timestamp = reader.varint("message.timestamp")
    strings = [reader.string(f"message.{name}", limits.max_string_length, "maxStringLength")
               for name in ("resourceVersion", "type", "source", "destination", "group", "operation", "resource")]
    length = reader.varint("message.contentLength")
    if length > limits.max_content_length:
        raise WireError(LIMIT_EXCEEDED, f"message.contentLength is {length}, above the limit maxContentLength={limits.max_content_length}")
    content = reader.take(length, "message.content")
    return Message(ident, parent, bool(flags & FLAG_SYNC), timestamp, *strings, content)


def frame_bytes(kind: int, lane: int, body: bytes, length_width: int | None = None) -> bytes:
    """type u8 · lane u8 · length varint · body."""
    return bytes([kind, lane]) + encode_varint(len(body), length_width) + body


def frame_type_lane_body(frame) -> tuple[int, int, bytes]:
    if isinstance(frame, Hello):
        body = bytearray(encode_varint(frame.version))
        body += encode_str(frame.node_id) + encode_id(frame.session_id) + encode_id(frame.peer_session_id)
        body += encode_varint(len(frame.resume_points))
        for lane, delivered in frame.resume_points:
            body += bytes([lane]) + encode_varint(delivered)
        body += encode_varint(len(frame.capabilities))
        for capability in frame.capabilities:
            body += encode_str(capability)
        return HELLO, LANE_CONTROL, bytes(body)
    if isinstance(frame, MessageFrame):
        body = encode_varint(frame.sequence) + bytes([frame.delivery_class])
        if frame.delivery_class == STATE:
            body += encode_str(frame.state_key or "")
        return MESSAGE, frame.lane, body + encode_message(frame.message)
    if isinstance(frame, Ack):
        return ACK, frame.lane, encode_varint(frame.sequence)
    if isinstance(frame, Credit):
        return CREDIT, frame.lane, encode_varint(frame.amount)
    if isinstance(frame, (Ping, Pong)):
        if len(frame.opaque) != 8:
            raise ValueError("PING/PONG carry exactly 8 bytes")
        return (PING if isinstance(frame, Ping) else PONG), LANE_CONTROL, bytes(frame.opaque)
    if isinstance(frame, GoAway):
        return GOAWAY, LANE_CONTROL, encode_varint(frame.code) + encode_str(frame.reason)
    raise TypeError(f"not a frame: {frame!r}")


def encode_frame(frame, length_width: int | None = None) -> bytes:
    """Encodes `frame`; `length_width=4` writes the length as the Swift encoder does."""
    return frame_bytes(*frame_type_lane_body(frame), length_width=length_width)


def _require_control_lane(lane: int, name: str) -> None:
    if lane != LANE_CONTROL:
        raise WireError(PROTOCOL_ERROR, f"{name}.lane: must be the control lane (0), was {lane}")


def decode_body(kind: int, lane: int, body, limits: Limits):
    reader = Reader(body)
    if kind == HELLO:
        _require_control_lane(lane, "HELLO")
        version = reader.varint("hello.version")
        node_id = reader.string("hello.nodeID", limits.max_node_id_length, "maxNodeIDLength")
        session_id = reader.ident("hello.sessionID")
        peer_session_id = reader.ident("hello.peerSessionID")
        count = reader.varint("hello.resumePointCount")
        if count > limits.max_resume_points:
            raise WireError(LIMIT_EXCEEDED, f"hello.resumePointCount is {count}, above the limit maxResumePoints={limits.max_resume_points}")
        points = []
        for _ in range(count):
            point_lane = reader.u8("hello.resumePoint.lane")
            if point_lane >= limits.lane_count:
                raise WireError(LIMIT_EXCEEDED, f"hello.resumePoint.lane is {point_lane}, above the limit laneCount={limits.lane_count}")
            points.append((point_lane, reader.varint("hello.resumePoint.delivered")))
        count = reader.varint("hello.capabilityCount")
        if count > limits.max_capabilities:
            raise WireError(LIMIT_EXCEEDED, f"hello.capabilityCount is {count}, above the limit maxCapabilities={limits.max_capabilities}")
        capabilities = [reader.string("hello.capability", limits.max_capability_length, "maxCapabilityLength") for _ in range(count)]
        frame = Hello(version, node_id, session_id, peer_session_id, points, capabilities)
    elif kind == MESSAGE:
        sequence = reader.varint("message.sequence")
        delivery_class = reader.u8("message.deliveryClass")
        if delivery_class not in (BEST_EFFORT, RELIABLE, STATE):
            raise WireError(PROTOCOL_ERROR, f"unknown delivery class {delivery_class}")
        state_key = None
        if delivery_class == STATE:
            state_key = reader.string("message.stateKey", limits.max_state_key_length, "maxStateKeyLength")
        if delivery_class != BEST_EFFORT and sequence == 0:
            raise WireError(PROTOCOL_ERROR, "message.sequence: reliable and state messages are numbered from 1")
        if delivery_class == BEST_EFFORT and sequence != 0:
            raise WireError(PROTOCOL_ERROR, "message.sequence: best-effort messages carry sequence 0")
        message = decode_message(reader, limits)
        frame = MessageFrame(lane, sequence, delivery_class, message, state_key, body_length=len(body))
    elif kind == ACK:
        frame = Ack(lane, reader.varint("ack.sequence"))
    elif kind == CREDIT:
        frame = Credit(lane, reader.varint("credit.bytes"))
    elif kind in (PING, PONG):
        _require_control_lane(lane, FRAME_NAMES[kind])
        opaque = reader.take(8, f"{FRAME_NAMES[kind]}.opaque")
        frame = Ping(opaque) if kind == PING else Pong(opaque)
    elif kind == GOAWAY:
        _require_control_lane(lane, "GOAWAY")
        code = reader.varint("goAway.code")
        frame = GoAway(code, reader.string("goAway.reason", limits.max_goaway_reason_length, "maxGoAwayReasonLength"))
    else:  # decode_frame has already refused unknown types
        raise WireError(PROTOCOL_ERROR, f"unknown frame type 0x{kind:02x}")
    if reader.remaining:
        raise WireError(PROTOCOL_ERROR, f"{reader.remaining} unexpected bytes after the fields of a {FRAME_NAMES[kind]} frame")
    return frame


def decode_frame(data, pos: int, limits: Limits):
    """Decodes the frame at `pos`: (frame, end) or None when `data` ends inside it.

    Type, lane and length are checked as soon as each is readable, before the body is awaited.
    """
    if pos >= len(data):
        return None
    kind = data[pos]
    if kind not in FRAME_NAMES:
        raise WireError(PROTOCOL_ERROR, f"unknown frame type 0x{kind:02x}")
    if pos + 1 >= len(data):
        return None
    lane = data[pos + 1]
    if lane >= limits.lane_count:
        raise WireError(LIMIT_EXCEEDED, f"frame.lane is {lane}, above the limit laneCount={limits.lane_count}")
    found = peek_varint(data, pos + 2)
    if found is None:
        return None
    length, width = found
    if length > limits.max_frame_length:
        raise WireError(LIMIT_EXCEEDED, f"frame.length is {length}, above the limit maxFrameLength={limits.max_frame_length}")
    start = pos + 2 + width
    end = start + length
    if end > len(data):
        return None
    return decode_body(kind, lane, memoryview(data)[start:end], limits), end


def decode_ws_message(payload: bytes, limits: Limits) -> list:
    """All frames of one WebSocket binary message; it must end exactly at a frame boundary."""
    frames, pos = [], 0
    while pos < len(payload):
        decoded = decode_frame(payload, pos, limits)
        if decoded is None:
            raise WireError(PROTOCOL_ERROR, "input ended inside frame (a WebSocket message must hold whole frames)")
        frame, pos = decoded
        frames.append(frame)
    return frames


class StreamDecoder:
    """Frames from a byte stream (the QUIC binding): buffers at most one incomplete frame."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list:
        self.buffer += data
        frames, pos = [], 0
        while True:
            decoded = decode_frame(self.buffer, pos, self.limits)
            if decoded is None:
                break
            frame, pos = decoded
            frames.append(frame)
        del self.buffer[:pos]
        return frames

    def finish(self) -> None:
        if self.buffer:
            raise WireError(PROTOCOL_ERROR, "stream ended inside a frame")


# ---------------------------------------------------------------------------------------------
# The network peer

def python_message(index: int, node: str) -> Message:
    return Message(
        id=os.urandom(16), timestamp=int(time.time() * 1000), source="pypeer", destination="cloud",
        group="user", operation="publish", resource=f"node/{node}/python/{index}", content=f"py-{index}".encode())


class Peer:
    def __init__(self, ws, args, limits: Limits):
        self.ws = ws
        self.args = args
        self.limits = limits
        self.connection_closed = _connection_closed_type()
        self.send_credit = {lane: 0 for lane in range(limits.lane_count)}
        self.consumed_since_grant = {lane: 0 for lane in range(limits.lane_count)}
        self.received_up_to = {lane: 0 for lane in range(limits.lane_count)}
        self.server_hello: Hello | None = None
        self.sent = 0
        self.received = 0
        self.acked = 0

    async def send(self, frames: list, raw: bytes = b"") -> None:
        """One WebSocket binary message holding `frames` (and optional raw bytes after them)."""
        await self.ws.send(b"".join(encode_frame(frame) for frame in frames) + raw)

    async def receive(self, timeout: float | None = None) -> list:
        """The frames of the next WebSocket message. A malformed one is answered with GOAWAY."""
        try:
            payload = await asyncio.wait_for(self.ws.recv(), timeout)
        except self.connection_closed as closed:
            raise PeerFailure(f"connection closed unexpectedly ({_describe_close(closed)})") from None
        except asyncio.TimeoutError:
            raise PeerFailure(f"no WebSocket message from the server within {timeout} s") from None
        if isinstance(payload, str):
            await self.refuse(WireError(PROTOCOL_ERROR, "text WebSocket messages are not part of the protocol"))
        try:
            return decode_ws_message(payload, self.limits)
        except WireError as error:
            await self.refuse(error)

    async def refuse(self, error: WireError):
        try:
            await self.send([GoAway(error.code, error.reason)])
            await self.ws.close()
        except Exception:
            pass
        raise PeerFailure(f"the server sent a malformed frame: {error.reason} (answered GOAWAY {error.code})")

    def accept_control(self, frame, replies: list) -> bool:
        """Handles frames every state allows; True if `frame` was one of them."""
        if isinstance(frame, Ping):
            replies.append(Pong(frame.opaque))
        elif isinstance(frame, Pong):
            pass
        elif isinstance(frame, Credit):
            if self.server_hello is None:
                raise PeerFailure("CREDIT before the server's HELLO")
            self.send_credit[frame.lane] += frame.amount
        elif isinstance(frame, GoAway):
            raise PeerFailure(f"the server sent GOAWAY {frame.code}: {frame.reason!r}")
        elif isinstance(frame, Hello):
            if self.server_hello is not None:
                raise PeerFailure("a second HELLO on one connection")
            if frame.version != PROTOCOL_VERSION:
                raise PeerFailure(f"server HELLO has version {frame.version}, expected {PROTOCOL_VERSION}")
            if frame.session_id == ZERO_ID:
                raise PeerFailure("server HELLO has an all-zero sessionID")
            self.server_hello = frame
        else:
            return False
        return True

    async def handshake(self, wait_for_credit: bool) -> None:
        hello = Hello(PROTOCOL_VERSION, self.args.node, os.urandom(16), ZERO_ID, [], ["batch"])
        await self.send([hello])
        credited: set[int] = set()
        while self.server_hello is None or (wait_for_credit and not credited.issuperset(DATA_LANES)):
            replies: list = []
            for frame in await self.receive(timeout=10):
                if not self.accept_control(frame, replies):
                    raise PeerFailure(f"{type(frame).__name__} frame during the handshake")
                if isinstance(frame, Credit):
                    credited.add(frame.lane)
            if replies:
                await self.send(replies)
        # Our side of the handshake: the initial window on every data lane.
        await self.send([Credit(lane, INITIAL_WINDOW) for lane in DATA_LANES])

    async def process(self, frames: list) -> None:
        """Exchange mode: applies the server's frames; answers with ACKs, PONGs and CREDITs."""
        replies: list = []
        acks: dict[int, int] = {}
        for frame in frames:
            if self.accept_control(frame, replies):
                continue
            if isinstance(frame, Ack):
                if frame.lane == LANE_EVENTS:
                    if frame.sequence > self.sent:
                        raise PeerFailure(f"ACK {frame.sequence} on lane 2 beyond the last sequence sent ({self.sent})")
                    self.acked = max(self.acked, frame.sequence)
                continue
            if not isinstance(frame, MessageFrame):
                raise PeerFailure(f"unexpected {type(frame).__name__} frame")
            lane = frame.lane
            self.consumed_since_grant[lane] += frame.body_length
            if lane == LANE_EVENTS:
                self.check_echo(frame)
            elif frame.delivery_class != BEST_EFFORT and frame.sequence <= self.received_up_to[lane]:
                continue  # a duplicate: dropped, but credited back
            if frame.delivery_class != BEST_EFFORT:
                self.received_up_to[lane] = frame.sequence
                acks[lane] = frame.sequence
        for lane, sequence in acks.items():
            replies.append(Ack(lane, sequence))
        for lane, consumed in self.consumed_since_grant.items():
            if consumed >= INITIAL_WINDOW // 2:
                replies.append(Credit(lane, consumed))
                self.consumed_since_grant[lane] = 0
        if replies:
            await self.send(replies)

    def check_echo(self, frame: MessageFrame) -> None:
        expected = self.received_up_to[LANE_EVENTS] + 1
        if frame.delivery_class != RELIABLE:
            raise PeerFailure(f"echo with sequence {frame.sequence} has delivery class {frame.delivery_class}, expected reliable (1)")
        if frame.sequence != expected:
            raise PeerFailure(f"echo sequence {frame.sequence}, expected {expected} (sequences must increase by exactly 1)")
        if expected > self.args.count:
            raise PeerFailure(f"echo {expected} but only {self.args.count} messages were sent")
        want = b"echo:" + f"py-{expected}".encode()
        if frame.message.content != want:
            raise PeerFailure(f"echo {expected} has content {frame.message.content!r}, expected {want!r}")
        self.received += 1

    async def exchange(self) -> dict:
        await self.handshake(wait_for_credit=True)
        count, batch = self.args.count, []
        for index in range(1, count + 1):
            if self.send_credit[LANE_EVENTS] <= 0:
                if batch:
                    await self.ws.send(b"".join(batch))
                    batch = []
                while self.send_credit[LANE_EVENTS] <= 0:
                    await self.process(await self.receive(timeout=10))
            frame = MessageFrame(LANE_EVENTS, index, RELIABLE, python_message(index, self.args.node))
            kind, lane, body = frame_type_lane_body(frame)
            self.send_credit[LANE_EVENTS] -= len(body)
            batch.append(frame_bytes(kind, lane, body))
            self.sent = index
            if len(batch) == 10 or index == count:
                await self.ws.send(b"".join(batch))
                batch = []
        while self.acked < count or self.received < count:
            await self.process(await self.receive(timeout=10))
        await self.goodbye()
        return {"sent": self.sent, "received": self.received, "acked": self.acked}

    async def expect_goaway(self, code: int) -> dict:
        goaway = None
        while goaway is None:
            for frame in await self.receive(timeout=10):
                if isinstance(frame, GoAway):
                    if goaway is not None:
                        raise PeerFailure("a frame after GOAWAY")
                    goaway = frame
                elif goaway is not None:
                    raise PeerFailure(f"{type(frame).__name__} after GOAWAY")
        if goaway.code != code:
            raise PeerFailure(f"GOAWAY code {goaway.code} ({goaway.reason!r}), expected {code}")
        try:
            payload = await asyncio.wait_for(self.ws.recv(), 5)
            raise PeerFailure(f"a WebSocket message after GOAWAY: {payload[:32]!r}")
        except self.connection_closed:
            pass
        except asyncio.TimeoutError:
            raise PeerFailure("the connection was not closed within 5 s of the GOAWAY") from None
        return {"goaway": goaway.code, "reason": goaway.reason}

    async def goodbye(self) -> None:
        try:
            await self.send([GoAway(NORMAL, "python peer done")])
            await asyncio.wait_for(self.ws.close(), 5)
        except (self.connection_closed, asyncio.TimeoutError):
            pass


def _connection_closed_type():
    from websockets.exceptions import ConnectionClosed
    return ConnectionClosed


def _describe_close(closed) -> str:
    received = getattr(closed, "rcvd", None)
    if received is not None:
        return f"close code {received.code} {received.reason!r}"
    return str(closed) or "no close frame"


def _connect_function():
    try:
        from websockets.asyncio.client import connect  # websockets >= 13
    except ImportError:
        from websockets import connect  # websockets 12, legacy API
    return connect


async def run(args, peer_box: list) -> dict:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    limits = Limits()
    connect = _connect_function()
    async with connect(args.url, ssl=context, server_hostname="localhost", compression=None,
                       max_size=4 * limits.max_frame_length, ping_interval=None, open_timeout=10) as ws:
        peer = Peer(ws, args, limits)
        peer_box.append(peer)
        if args.mode == "exchange":
            return await peer.exchange()
        await peer.handshake(wait_for_credit=False)
        if args.mode == "malformed":
            await ws.send(bytes([0x7F, LANE_CONTROL]) + encode_varint(0))
            return await peer.expect_goaway(PROTOCOL_ERROR)
        if args.mode == "oversize":
            # 2^30 does not fit a 4-byte varint (30 bits hold at most 2^30 - 1): 8-byte form.
            await ws.send(bytes([MESSAGE, LANE_EVENTS]) + encode_varint(1 << 30))
            return await peer.expect_goaway(LIMIT_EXCEEDED)
        raise PeerFailure(f"unknown mode {args.mode}")


async def main_async(args) -> dict:
    peer_box: list = []
    try:
        async with asyncio.timeout(30):
            return await run(args, peer_box)
    except TimeoutError:
        progress = ""
        if peer_box:
            peer = peer_box[0]
            progress = f" (sent {peer.sent}, received {peer.received}, acked {peer.acked})"
        raise PeerFailure(f"overall timeout of 30 s{progress}") from None


# ---------------------------------------------------------------------------------------------
# Self-test (no network)

def _expect_refusal(data: bytes, code: int, fragment: str, limits: Limits = Limits()) -> None:
    try:
        decode_ws_message(data, limits)
    except WireError as error:
        assert error.code == code, f"{data[:24].hex()}: code {error.code} ({error.reason}), expected {code}"
        assert fragment in error.reason, f"{error.reason!r} lacks {fragment!r}"
        return
    raise AssertionError(f"{data[:24].hex()} was accepted, expected refusal with {code}")


def self_test() -> None:
    limits = Limits()
    # Varints: the RFC 9000 §A.1 examples, boundaries, and non-minimal forms.
    for raw, value in [("c2197c5eff14e88c", 151288809941952652), ("9d7f3e7d", 494878333), ("7bbd", 15293),
                       ("25", 37), ("4025", 37)]:
        assert peek_varint(bytes.fromhex(raw), 0) == (value, len(raw) // 2), raw
    for value in [0, 63, 64, 16383, 16384, (1 << 30) - 1, 1 << 30, VARINT_MAX]:
        encoded = encode_varint(value)
        assert peek_varint(encoded, 0) == (value, len(encoded)), value
        for width in (1, 2, 4, 8):
            if value < 1 << (8 * width - 2):
                assert peek_varint(encode_varint(value, width), 0) == (value, width)
    assert peek_varint(b"\x80\x00", 0) is None  # truncated

    message = Message(id=os.urandom(16), parent_id=os.urandom(16), sync=True, timestamp=1_700_000_000_123,
                      resource_version="42", type="twin", source="edged", destination="cloud", group="resource",
                      operation="update", resource="default/pod/ñandú", content=bytes(range(256)) * 3)
    frames = [
        Hello(1, "edge-1", os.urandom(16), os.urandom(16), [(1, 7), (2, 1 << 40), (4, 0)], ["batch", "zstd"]),
        Hello(1, "n" * 253, os.urandom(16), ZERO_ID, [], []),
        MessageFrame(2, 0, BEST_EFFORT, Message(id=ZERO_ID)),
        MessageFrame(2, 17, RELIABLE, message),
        MessageFrame(1, 1 << 20, STATE, message, state_key="pods/default/web-0"),
        MessageFrame(3, 1, RELIABLE, Message(id=os.urandom(16), content=b"x" * 70_000)),
        Ack(2, 123456), Ack(1, 0),
        Credit(4, INITIAL_WINDOW), Credit(15, 0),
        Ping(b"\x00\x01\x02\x03\x04\x05\x06\x07"), Pong(b"\xff" * 8),
        GoAway(REPLACED, "a newer connection replaced this one"), GoAway(1000, ""),
    ]
    kinds_seen = set()
    for frame in frames:
        for width in (None, 4, 8):  # minimal lengths, the Swift encoder's 4-byte lengths, 8 bytes
            data = encode_frame(frame, length_width=width)
            [decoded] = decode_ws_message(data, limits)
            assert decoded == frame, f"{frame!r} != {decoded!r}"
            if isinstance(decoded, MessageFrame):
                assert decoded.body_length == len(data) - 2 - (width or len(encode_varint(decoded.body_length)))
            kinds_seen.add(data[0])
            # Byte-stream binding: fed one byte at a time, the frame appears exactly once, at the end.
            stream = StreamDecoder(limits)
            out = []
            for index in range(len(data)):
                got = stream.feed(data[index:index + 1])
                assert not got or index == len(data) - 1
                out += got
            assert out == [frame]
            stream.finish()
    assert kinds_seen == set(FRAME_NAMES), kinds_seen

    # Several frames in one WebSocket message, as the batching senders write them.
    batch = b"".join(encode_frame(frame) for frame in frames)
    assert decode_ws_message(batch, limits) == frames

    # Refusals: protocolError (1) and limitExceeded (2).
    good = encode_frame(MessageFrame(2, 1, RELIABLE, message))
    _expect_refusal(bytes([0x7F, 0, 0]), PROTOCOL_ERROR, "unknown frame type 0x7f")
    _expect_refusal(bytes([0x00]), PROTOCOL_ERROR, "unknown frame type 0x0")
    _expect_refusal(bytes([ACK, 16, 1, 0]), LIMIT_EXCEEDED, "laneCount=16")
    _expect_refusal(bytes([MESSAGE, 2]) + encode_varint(1 << 30), LIMIT_EXCEEDED, "maxFrameLength")
    _expect_refusal(bytes([MESSAGE, 2]) + encode_varint((1 << 30) - 1, 4), LIMIT_EXCEEDED, "maxFrameLength")
    _expect_refusal(bytes([MESSAGE, 2]) + encode_varint(limits.max_frame_length + 1), LIMIT_EXCEEDED, "maxFrameLength")
    _expect_refusal(good[:-1], PROTOCOL_ERROR, "input ended inside frame")
    _expect_refusal(frame_bytes(ACK, 2, encode_varint(5) + b"\x00"), PROTOCOL_ERROR, "unexpected bytes")
    _expect_refusal(frame_bytes(PING, 0, b"\x00" * 9), PROTOCOL_ERROR, "unexpected bytes")
    _expect_refusal(frame_bytes(PONG, 0, b"\x00" * 7), PROTOCOL_ERROR, "input ended inside PONG.opaque")
    _expect_refusal(frame_bytes(PING, 1, b"\x00" * 8), PROTOCOL_ERROR, "control lane")
    _expect_refusal(frame_bytes(HELLO, 2, frame_type_lane_body(frames[0])[2]), PROTOCOL_ERROR, "control lane")
    _expect_refusal(frame_bytes(GOAWAY, 0, encode_varint(1) + encode_varint(2) + b"\xc3\x28"), PROTOCOL_ERROR, "UTF-8")
    _expect_refusal(frame_bytes(GOAWAY, 0, encode_varint(1) + encode_varint(1025) + b"x" * 1025), LIMIT_EXCEEDED, "maxGoAwayReasonLength")
    _expect_refusal(frame_bytes(MESSAGE, 2, encode_varint(0) + bytes([3]) + encode_message(message)), PROTOCOL_ERROR, "delivery class 3")
    _expect_refusal(frame_bytes(MESSAGE, 2, encode_varint(0) + bytes([1]) + encode_message(message)), PROTOCOL_ERROR, "numbered from 1")
    _expect_refusal(frame_bytes(MESSAGE, 2, encode_varint(0) + bytes([2]) + encode_str("k") + encode_message(message)), PROTOCOL_ERROR, "numbered from 1")
    _expect_refusal(frame_bytes(MESSAGE, 2, encode_varint(4) + bytes([0]) + encode_message(message)), PROTOCOL_ERROR, "sequence 0")
    _expect_refusal(frame_bytes(MESSAGE, 1, encode_varint(1) + bytes([2]) + encode_str("k" * 1025) + encode_message(message)), LIMIT_EXCEEDED, "maxStateKeyLength")
    bad_flags = bytearray(encode_message(message))
    bad_flags[0] |= 0x04
    _expect_refusal(frame_bytes(MESSAGE, 2, encode_varint(1) + bytes([1]) + bytes(bad_flags)), PROTOCOL_ERROR, "flag bits 0x04")
    long_string = Message(id=ZERO_ID, resource="r" * 4097)
    _expect_refusal(encode_frame(MessageFrame(2, 1, RELIABLE, long_string)), LIMIT_EXCEEDED, "maxStringLength")
    huge_content = encode_message(Message(id=ZERO_ID))[:-1] + encode_varint(16 * MIB + 1)
    _expect_refusal(frame_bytes(MESSAGE, 4, encode_varint(1) + bytes([1]) + huge_content), LIMIT_EXCEEDED, "maxContentLength")
    short_content = encode_message(Message(id=ZERO_ID))[:-1] + encode_varint(10) + b"abc"
    _expect_refusal(frame_bytes(MESSAGE, 4, encode_varint(1) + bytes([1]) + short_content), PROTOCOL_ERROR, "message.content")
    hello_body = frame_type_lane_body(Hello(1, "x" * 254, ZERO_ID))[2]
    _expect_refusal(frame_bytes(HELLO, 0, hello_body), LIMIT_EXCEEDED, "maxNodeIDLength")
    hello_body = frame_type_lane_body(Hello(1, "n", ZERO_ID, ZERO_ID, [(1, 1)] * 257))[2]
    _expect_refusal(frame_bytes(HELLO, 0, hello_body), LIMIT_EXCEEDED, "maxResumePoints")
    hello_body = frame_type_lane_body(Hello(1, "n", ZERO_ID, ZERO_ID, [(16, 1)]))[2]
    _expect_refusal(frame_bytes(HELLO, 0, hello_body), LIMIT_EXCEEDED, "laneCount")
    hello_body = frame_type_lane_body(Hello(1, "n", ZERO_ID, ZERO_ID, [], ["c"] * 33))[2]
    _expect_refusal(frame_bytes(HELLO, 0, hello_body), LIMIT_EXCEEDED, "maxCapabilities")
    hello_body = frame_type_lane_body(Hello(1, "n", ZERO_ID, ZERO_ID, [], ["c" * 65]))[2]
    _expect_refusal(frame_bytes(HELLO, 0, hello_body), LIMIT_EXCEEDED, "maxCapabilityLength")
    # The length check does not wait for the body: a header alone is refused by the stream decoder.
    stream = StreamDecoder(limits)
    try:
        stream.feed(bytes([MESSAGE, 2]) + encode_varint(1 << 30))
        raise AssertionError("oversized header accepted")
    except WireError as error:
        assert error.code == LIMIT_EXCEEDED
    stream = StreamDecoder(limits)
    assert stream.feed(good[:10]) == []
    try:
        stream.finish()
        raise AssertionError("a stream ending inside a frame was accepted")
    except WireError as error:
        assert error.code == PROTOCOL_ERROR
    print(json.dumps({"selfTest": "passed", "frameTypes": len(kinds_seen), "frames": len(frames)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="wss://127.0.0.1:PORT/channel")
    parser.add_argument("--ca", help="PEM CA that signed the server certificate")
    parser.add_argument("--cert", help="PEM client certificate (chain)")
    parser.add_argument("--key", help="PEM client private key")
    parser.add_argument("--node", default="edge-1", help="node id sent in HELLO")
    parser.add_argument("--count", type=int, default=100, help="messages to send in exchange mode")
    parser.add_argument("--mode", default="exchange", choices=["exchange", "malformed", "oversize"])
    parser.add_argument("--self-test", action="store_true", help="codec round trips, no network")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return 0
    missing = [name for name in ("url", "ca", "cert", "key") if not getattr(args, name)]
    if missing:
        parser.error("missing " + ", ".join("--" + name for name in missing))
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        result = asyncio.run(main_async(args))
    except PeerFailure as failure:
        print(f"ws_peer ({args.mode}): FAILED: {failure}", file=sys.stderr)
        return 1
    except Exception as error:  # TLS, connection refused, handshake errors
        print(f"ws_peer ({args.mode}): FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
