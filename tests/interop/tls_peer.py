#!/usr/bin/env python3
"""A Python `websockets` peer for wsio's TLS interop run (tls-run): a wss:// echo server, or a
client that checks a wss:// echo server, trusting only the CA made for the run.

    python tls_peer.py server CERT_PEM KEY_PEM   prints "listening on PORT", echoes until killed
    python tls_peer.py client URL CA_PEM         exits 0 once every echo came back unchanged
"""

import asyncio
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.sync.client import connect

MAX_SIZE = 64 << 20


def messages():
    """Text, binary and 1 MiB of each; each echo must equal what was sent."""
    big = bytes(((i * 2654435761) & 0xFFFFFFFF) >> 13 & 0xFF for i in range(1 << 20))
    return ["hello over tls", bytes([0, 1, 2, 255]), "abcdefghij" * (1 << 17), big]


def client(url, ca):
    context = ssl.create_default_context(cafile=ca)
    with connect(url, ssl=context, max_size=MAX_SIZE, open_timeout=10) as ws:
        extensions = [extension.name for extension in ws.protocol.extensions]
        if "permessage-deflate" not in extensions:
            sys.exit(f"tls_peer.py: no deflate: {extensions}")
        for message in messages():
            ws.send(message)
            echo = ws.recv(timeout=30)
            if echo != message:
                sys.exit(f"tls_peer.py: echo of a {len(message)}-long message differs")
        ws.close()
    print("ok", flush=True)


async def server(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, ssl=context, max_size=MAX_SIZE) as running:
        port = running.sockets[0].getsockname()[1]
        print(f"listening on {port}", flush=True)
        await running.serve_forever()


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "server":
        asyncio.run(server(args[1], args[2]))
    elif len(args) == 3 and args[0] == "client":
        client(args[1], args[2])
    else:
        sys.exit("usage: tls_peer.py server CERT KEY | client URL CA")


if __name__ == "__main__":
    main()
