#!/usr/bin/env python3
"""An independent peer for the channel protocol, written from docs/protocol.md only.

exchange: HELLO, N reliable messages on lane 2 (events), expects an ACK covering them and N echoes
          (content b"echo:" + original) from the server, acknowledging them.
malformed: after the HELLO exchange sends a frame of unknown type; expects GOAWAY code 1.
oversize:  after the HELLO exchange claims a 2^30-byte MESSAGE; expects GOAWAY code 2.
"""
import argparse, asyncio, json, os, ssl, struct, sys

import websockets

HELLO, MESSAGE, ACK, CREDIT, PING, PONG, GOAWAY = range(1, 8)


def varint(value, width=None):
    if width is None:
        width = 1 if value < 64 else 2 if value < 16384 else 4 if value < 2**30 else 8
    prefix = {1: 0, 2: 1, 4: 2, 8: 3}[width]
    return (value | (prefix << (width * 8 - 2))).to_bytes(width, "big")


def string(text):
    data = text.encode()
    return varint(len(data)) + data


def frame(kind, lane, body):
    return bytes([kind, lane]) + varint(len(body)) + body


def message(index, node):
    body = bytes([0]) + os.urandom(16) + varint(1700000000000)
    for field in ["", "", "pypeer", "cloud", "user", "publish", f"node/{node}/python/{index}"]:
        body += string(field)
    content = f"py-{index}".encode()
    return body + varint(len(content)) + content


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def varint(self):
        first = self.data[self.pos]
        width = 1 << (first >> 6)
        raw = int.from_bytes(self.take(width), "big")
        return raw & ((1 << (width * 8 - 2)) - 1)

    def string(self):
        return self.take(self.varint()).decode()


def frames(payload):
    reader = Reader(payload)
    while reader.pos < len(payload):
        kind, lane = reader.take(1)[0], reader.take(1)[0]
        body = reader.take(reader.varint())
        yield kind, lane, body


def decode_message(body):
    reader = Reader(body)
    sequence, klass = reader.varint(), reader.take(1)[0]
    if klass == 2:
        reader.string()
    flags = reader.take(1)[0]
    reader.take(16)
    if flags & 2:
        reader.take(16)
    reader.varint()
    fields = [reader.string() for _ in range(7)]
    content = reader.take(reader.varint())
    if reader.pos != len(body):
        raise ValueError("trailing bytes in MESSAGE")
    return sequence, fields, content


async def run(args):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    context.load_cert_chain(args.cert, args.key)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    async with websockets.connect(args.url, ssl=context, server_hostname="localhost", max_size=None) as ws:
        hello = varint(1) + string(args.node) + os.urandom(16) + bytes(16) + varint(0) + varint(1) + string("batch")
        await ws.send(frame(HELLO, 0, hello))
        got_hello = False
        credit = 0
        while not (got_hello and credit > 0):
            for kind, lane, body in frames(await ws.recv()):
                if kind == HELLO:
                    got_hello = True
                elif kind == CREDIT and lane == 2:
                    credit += Reader(body).varint()
        # Grant the server its initial window on every data lane, as the specification requires.
        await ws.send(b"".join(frame(CREDIT, lane, varint(1 << 20)) for lane in range(1, 16)))
        if args.mode == "malformed":
            await ws.send(bytes([0x7F, 0, 0]))
            return await expect_goaway(ws, 1)
        if args.mode == "oversize":
            await ws.send(bytes([MESSAGE, 2]) + varint(2**30))
            return await expect_goaway(ws, 2)
        batch = []
        for index in range(1, args.count + 1):
            body = varint(index) + bytes([1]) + message(index, args.node)
            credit -= len(body)
            batch.append(frame(MESSAGE, 2, body))
            if len(batch) == 10 or index == args.count:
                await ws.send(b"".join(batch))
                batch = []
        acked, received, expected = 0, 0, 1
        while acked < args.count or received < args.count:
            payload = await ws.recv()
            acks = b""
            for kind, lane, body in frames(payload):
                if kind == ACK and lane == 2:
                    acked = max(acked, Reader(body).varint())
                elif kind == MESSAGE and lane == 2:
                    sequence, _, content = decode_message(body)
                    if sequence != expected:
                        raise SystemExit(f"echo sequence {sequence}, expected {expected}")
                    if content != f"echo:py-{expected}".encode():
                        raise SystemExit(f"echo content {content!r} for {expected}")
                    received, expected = received + 1, expected + 1
                    acks = frame(ACK, 2, varint(sequence))
                elif kind == PING:
                    await ws.send(frame(PONG, 0, body))
                elif kind == GOAWAY:
                    raise SystemExit(f"unexpected GOAWAY {body!r}")
            if acks:
                await ws.send(acks)
        print(json.dumps({"sent": args.count, "received": received, "acked": acked}))


async def expect_goaway(ws, code):
    try:
        while True:
            for kind, _, body in frames(await ws.recv()):
                if kind == GOAWAY:
                    reader = Reader(body)
                    got, reason = reader.varint(), reader.string()
                    print(json.dumps({"goaway": got, "reason": reason}))
                    if got != code:
                        raise SystemExit(f"GOAWAY code {got}, expected {code}")
                    return
    except websockets.ConnectionClosed:
        raise SystemExit("connection closed without GOAWAY")


def self_test():
    for value in [0, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**62 - 1]:
        assert Reader(varint(value)).varint() == value
    assert Reader(varint(5, 4)).varint() == 5
    body = varint(3) + bytes([1]) + message(3, "n")
    [(kind, lane, decoded)] = list(frames(frame(MESSAGE, 2, body)))
    sequence, fields, content = decode_message(decoded)
    assert (kind, lane, sequence, fields[6], content) == (MESSAGE, 2, 3, "node/n/python/3", b"py-3")
    print("self-test passed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url"); parser.add_argument("--ca"); parser.add_argument("--cert"); parser.add_argument("--key")
    parser.add_argument("--node", default="edge-1"); parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--mode", default="exchange", choices=["exchange", "malformed", "oversize"])
    parser.add_argument("--self-test", action="store_true")
    arguments = parser.parse_args()
    if arguments.self_test:
        self_test()
    else:
        asyncio.run(asyncio.wait_for(run(arguments), 30))
