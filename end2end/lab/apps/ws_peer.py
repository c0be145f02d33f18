"""Both ends of a WebSocket session, with the `websockets` library (RFC 6455, its own framing and
masking): `server` echoes every message and logs, as JSON lines, each message it received and
sent (kind and size) and the close code and reason it got; `client` connects with the `chat`
subprotocol, sends text and binary messages (one big enough for a 64-bit length, one sent in
fragments), reads the echoes, pings once, and closes with 1000 "bye".

usage: ws_peer.py server HOST PORT LOG | ws_peer.py client HOST PORT
"""

import asyncio
import json
import sys

import websockets


async def serve(host, port, log):
    out = open(log, "a", buffering=1)

    async def handler(ws):
        async for message in ws:
            kind = "text" if isinstance(message, str) else "binary"
            size = len(message.encode() if kind == "text" else message)
            out.write(json.dumps({"received": kind, "size": size}) + "\n")
            await ws.send(message)
            out.write(json.dumps({"sent": kind, "size": size}) + "\n")
        out.write(json.dumps({"close_code": ws.close_code, "close_reason": ws.close_reason}) + "\n")

    async with websockets.serve(handler, host, int(port), subprotocols=["chat"], ping_interval=None,
                                max_size=None, compression=None):
        await asyncio.Future()


async def client(host, port):
    async with websockets.connect(f"ws://{host}:{port}/chat", subprotocols=["chat"], ping_interval=None,
                                  max_size=None, compression=None) as ws:
        for i in range(5):
            await ws.send(f"secret-text-{i}")
            await ws.recv()
        for size in (10, 300, 70_000):
            await ws.send(bytes(size))
            await ws.recv()
        await ws.send(["secret-", "fragmented-", "text"])
        await ws.recv()
        await (await ws.ping())
        await ws.close(1000, "bye")


if __name__ == "__main__":
    role, host, port = sys.argv[1:4]
    if role == "server":
        asyncio.run(serve(host, port, sys.argv[4]))
    else:
        asyncio.run(client(host, port))
