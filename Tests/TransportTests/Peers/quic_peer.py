#!/usr/bin/env python3
"""An independent QUIC peer (aioquic) for the channel's QUIC backend.

aioquic is a QUIC and TLS 1.3 implementation of its own (no ngtcp2, no GnuTLS), and the channel
frames come from ws_peer.py's codec, written from docs/protocol.md alone. So a test that passes
against this peer checks our QUIC stack and the QUIC binding of the protocol (section 1), not one
implementation against itself.

Modes:
  client-echo      connects with ALPN kubeedge-channel/1 and a client certificate, verifies the
                   server certificate, sends --bytes bytes on a unidirectional stream and expects
                   them back on a server unidirectional stream. Prints {"echoed": N, "alpn": "..."}.
  client-exchange  speaks the channel over QUIC: HELLO on its control stream, --count reliable
                   MESSAGE frames on the events lane's stream; expects the server's HELLO, an ACK
                   covering them all and --count echoes (content b"echo:" + original) on the
                   server's events stream, and that every frame arrives on the stream the binding
                   names. Prints {"sent": N, "received": N, "acked": N}.
  client-refused   breaks the binding in one way (--case): `credit` sends CREDIT after the HELLO
                   exchange, `early-message` sends a MESSAGE before any HELLO, `oversize` declares
                   a 2^30-byte MESSAGE, `stream-end` ends the events lane's stream. Expects the
                   server to close the connection with the GOAWAY code as the application error
                   (and the GOAWAY frame on its control stream if it arrives first). Prints
                   {"close": <code>, "goaway": <code or null>, "reason": "..."}.
  server-echo      listens on 127.0.0.1 (port --port, 0 for any), prints "LISTENING <port>", and
                   echoes what a client sends on its unidirectional streams back on a server
                   unidirectional stream. Asks for a client certificate (aioquic's test hook).
                   Prints "HANDSHAKE alpn=<protocol>" per connection. Runs until stdin closes.

Exit status 0 on success, 1 with a message on stderr on any mismatch or after --timeout seconds.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, StreamDataReceived

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ws_peer import (  # noqa: E402  (the codec written from the specification)
    LANE_CONTROL, LANE_EVENTS, NORMAL, RELIABLE, Ack, Credit, GoAway, Hello, Limits, MessageFrame, PeerFailure,
    Ping, Pong, StreamDecoder, WireError, encode_frame, python_message,
)

ALPN = "kubeedge-channel/1"
PROTOCOL_VERSION = 1


def client_stream(lane: int) -> int:
    """The client's unidirectional stream for `lane` (section 1: stream number names the lane)."""
    return lane << 2 | 0x2


def server_stream(lane: int) -> int:
    return lane << 2 | 0x3


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events: asyncio.Queue = asyncio.Queue()

    def quic_event_received(self, event) -> None:
        self.events.put_nowait(event)


async def next_event(protocol: ClientProtocol, timeout: float):
    try:
        event = await asyncio.wait_for(protocol.events.get(), timeout)
    except asyncio.TimeoutError:
        raise PeerFailure(f"nothing from the server within {timeout} s") from None
    if isinstance(event, ConnectionTerminated):
        raise PeerFailure(f"connection closed by the server: code {event.error_code}, reason {event.reason_phrase!r}")
    return event


def client_configuration(args) -> QuicConfiguration:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name="localhost")
    configuration.load_verify_locations(args.ca)
    configuration.load_cert_chain(args.cert, args.key)
    configuration.verify_mode = ssl.CERT_REQUIRED
    return configuration


async def client_echo(args) -> dict:
    async with connect("127.0.0.1", args.port, configuration=client_configuration(args), create_protocol=ClientProtocol) as protocol:
        alpn = None
        payload = bytes((index * 7) & 0xFF for index in range(args.bytes))
        stream = protocol._quic.get_next_available_stream_id(is_unidirectional=True)
        protocol._quic.send_stream_data(stream, payload, end_stream=False)
        protocol.transmit()
        echoed = bytearray()
        while len(echoed) < len(payload):
            event = await next_event(protocol, args.timeout)
            if isinstance(event, HandshakeCompleted):
                alpn = event.alpn_protocol
            elif isinstance(event, StreamDataReceived):
                if event.stream_id & 0x3 != 0x3:
                    raise PeerFailure(f"echo on stream {event.stream_id}, expected a server unidirectional stream")
                echoed += event.data
        if bytes(echoed) != payload:
            raise PeerFailure("the echoed bytes differ from those sent")
        alpn = alpn or protocol._quic.tls.alpn_negotiated
        protocol.close()
        return {"echoed": len(echoed), "alpn": alpn}


async def client_exchange(args) -> dict:
    limits = Limits()
    async with connect("127.0.0.1", args.port, configuration=client_configuration(args), create_protocol=ClientProtocol) as protocol:
        quic = protocol._quic
        decoders: dict[int, StreamDecoder] = {}

        def send(lane: int, frames: list) -> None:
            quic.send_stream_data(client_stream(lane), b"".join(encode_frame(frame) for frame in frames))
            protocol.transmit()

        def frames_from(event: StreamDataReceived) -> list:
            stream = event.stream_id
            if stream & 0x3 != 0x3:
                raise PeerFailure(f"data on stream {stream}, which is not a server unidirectional stream")
            if event.end_stream:
                raise PeerFailure(f"the server ended stream {stream}; lane streams stay open")
            decoder = decoders.setdefault(stream, StreamDecoder(limits))
            try:
                frames = decoder.feed(event.data)
            except WireError as error:
                raise PeerFailure(f"malformed frame on stream {stream}: {error.reason}") from None
            for frame in frames:
                expected = server_stream(frame.lane) if isinstance(frame, MessageFrame) else server_stream(LANE_CONTROL)
                if stream != expected:
                    raise PeerFailure(f"{type(frame).__name__} on stream {stream}, the binding puts it on stream {expected}")
                if isinstance(frame, Credit):
                    raise PeerFailure("CREDIT over QUIC: stream flow control replaces it")
            return frames

        session = os.urandom(16)
        send(LANE_CONTROL, [Hello(PROTOCOL_VERSION, args.node, session, capabilities=["batch"])])
        server_hello = None
        while server_hello is None:
            event = await next_event(protocol, args.timeout)
            if isinstance(event, StreamDataReceived):
                for frame in frames_from(event):
                    if server_hello is None and not isinstance(frame, Hello):
                        raise PeerFailure(f"{type(frame).__name__} before the server's HELLO on the control stream")
                    if isinstance(frame, Hello):
                        server_hello = frame
        count = args.count
        for start in range(1, count + 1, 10):
            send(LANE_EVENTS, [MessageFrame(LANE_EVENTS, index, RELIABLE, python_message(index, args.node))
                               for index in range(start, min(start + 10, count + 1))])
        acked = received = 0
        while acked < count or received < count:
            event = await next_event(protocol, args.timeout)
            if not isinstance(event, StreamDataReceived):
                continue
            replies = []
            for frame in frames_from(event):
                if isinstance(frame, Ack) and frame.lane == LANE_EVENTS:
                    if frame.sequence < acked or frame.sequence > count:
                        raise PeerFailure(f"ACK {frame.sequence} after ACK {acked} of {count}")
                    acked = frame.sequence
                elif isinstance(frame, MessageFrame):
                    expected = received + 1
                    want = b"echo:" + f"py-{expected}".encode()
                    if frame.lane != LANE_EVENTS or frame.sequence != expected or frame.delivery_class != RELIABLE:
                        raise PeerFailure(f"echo lane {frame.lane} sequence {frame.sequence} class {frame.delivery_class}, expected events {expected} reliable")
                    if frame.message.content != want:
                        raise PeerFailure(f"echo {expected} has content {frame.message.content!r}, expected {want!r}")
                    received = expected
                elif isinstance(frame, Ping):
                    replies.append(Pong(frame.opaque))
                elif isinstance(frame, GoAway):
                    raise PeerFailure(f"GOAWAY {frame.code}: {frame.reason}")
            if received:
                replies.append(Ack(LANE_EVENTS, received))
            if replies:
                send(LANE_CONTROL, replies)
        send(LANE_CONTROL, [GoAway(NORMAL, "python QUIC peer done")])
        if not args.close_at_once:
            await asyncio.sleep(0.1)
        protocol.close()
        return {"sent": count, "received": received, "acked": acked}


async def client_refused(args) -> dict:
    limits = Limits()
    async with connect("127.0.0.1", args.port, configuration=client_configuration(args), create_protocol=ClientProtocol) as protocol:
        quic = protocol._quic
        decoder = StreamDecoder(limits)
        goaway = None

        def send(lane: int, data: bytes, end: bool = False) -> None:
            quic.send_stream_data(client_stream(lane), data, end_stream=end)
            protocol.transmit()

        async def until_closed() -> dict:
            nonlocal goaway
            while True:
                try:
                    event = await asyncio.wait_for(protocol.events.get(), args.timeout)
                except asyncio.TimeoutError:
                    raise PeerFailure(f"the server did not close the connection within {args.timeout} s") from None
                if isinstance(event, ConnectionTerminated):
                    return {"close": event.error_code, "goaway": goaway.code if goaway else None, "reason": event.reason_phrase}
                if isinstance(event, StreamDataReceived) and event.stream_id == server_stream(LANE_CONTROL):
                    for frame in decoder.feed(event.data):
                        if isinstance(frame, GoAway):
                            goaway = frame

        if args.case == "early-message":
            send(LANE_EVENTS, encode_frame(MessageFrame(LANE_EVENTS, 1, RELIABLE, python_message(1, args.node))))
            return await until_closed()
        send(LANE_CONTROL, encode_frame(Hello(PROTOCOL_VERSION, args.node, os.urandom(16), capabilities=["batch"])))
        while True:
            event = await next_event(protocol, args.timeout)
            if isinstance(event, StreamDataReceived) and event.stream_id == server_stream(LANE_CONTROL):
                if any(isinstance(frame, Hello) for frame in decoder.feed(event.data)):
                    break
        if args.case == "credit":
            send(LANE_CONTROL, encode_frame(Credit(LANE_EVENTS, 4096)))
        elif args.case == "oversize":
            send(LANE_EVENTS, bytes([0x02, LANE_EVENTS]) + bytes([0xC0, 0, 0, 0, 0x40, 0, 0, 0]))
        elif args.case == "stream-end":
            send(LANE_EVENTS, encode_frame(MessageFrame(LANE_EVENTS, 1, RELIABLE, python_message(1, args.node))), end=True)
        return await until_closed()


class EchoServerProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.echo_stream: int | None = None

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            print(f"HANDSHAKE alpn={event.alpn_protocol}", flush=True)
        elif isinstance(event, StreamDataReceived) and event.data:
            if self.echo_stream is None:
                self.echo_stream = self._quic.get_next_available_stream_id(is_unidirectional=True)
            self._quic.send_stream_data(self.echo_stream, event.data)
            self.transmit()


class ClientCertificateQuicConnection(QuicConnection):
    """aioquic's server asks for a client certificate only through a test hook; set it."""

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        self.tls._request_client_certificate = True


async def server_echo(args) -> dict:
    configuration = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    configuration.load_cert_chain(args.cert, args.key)
    import aioquic.asyncio.server as server_module
    server_module.QuicConnection = ClientCertificateQuicConnection
    server = await serve("127.0.0.1", args.port, configuration=configuration, create_protocol=EchoServerProtocol)
    port = server._transport.get_extra_info("sockname")[1]
    print(f"LISTENING {port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    return {"stopped": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["client-echo", "client-exchange", "client-refused", "server-echo"])
    parser.add_argument("--case", choices=["credit", "early-message", "oversize", "stream-end"], default="credit")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ca")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--node", default="edge-1")
    parser.add_argument("--bytes", type=int, default=100_000)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--close-at-once", action="store_true",
                        help="client-exchange: send CONNECTION_CLOSE right behind the GOAWAY (same read burst on the server)")
    args = parser.parse_args()
    run = {"client-echo": client_echo, "client-exchange": client_exchange, "client-refused": client_refused,
           "server-echo": server_echo}[args.mode]
    try:
        result = asyncio.run(asyncio.wait_for(run(args), None if args.mode == "server-echo" else 60))
    except (PeerFailure, ConnectionError, asyncio.TimeoutError) as failure:
        print(f"quic peer failed: {failure or type(failure).__name__}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
