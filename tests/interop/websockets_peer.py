"""A Python `websockets` peer for wsio's interop tests: an echo server or a client, with
permessage-deflate configured from the command line. See README.md for the line protocol.

    python websockets_peer.py server [DEFLATE OPTIONS]
    python websockets_peer.py client --url ws://127.0.0.1:PORT/ [DEFLATE OPTIONS]

DEFLATE OPTIONS: --no-deflate, --server-no-context-takeover, --client-no-context-takeover,
--server-max-window-bits N, --client-max-window-bits N|bare|omit, --timeout-ms N.
"""

import argparse
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

MAX_SIZE = 64 << 20
PREFIX = "interop:"


def main() -> None:
    args = parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout_ms / 1000))
    except TimeoutError:
        fail(f"timed out after {args.timeout_ms} ms")
    except Exception as error:  # noqa: BLE001 - any failure is reported the same way
        fail(f"{type(error).__name__}: {error}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--url")
    parser.add_argument("--no-deflate", dest="deflate", action="store_false")
    parser.add_argument("--server-no-context-takeover", action="store_true")
    parser.add_argument("--client-no-context-takeover", action="store_true")
    parser.add_argument("--server-max-window-bits", type=int)
    # "bare": offered without a value; "omit": not offered at all; default: bare for a client
    # (the websockets default), not configured for a server.
    parser.add_argument("--client-max-window-bits")
    parser.add_argument("--timeout-ms", type=int, default=30000)
    args = parser.parse_args()
    if args.role == "client" and not args.url:
        parser.error("client needs --url")
    return args


def extensions(args: argparse.Namespace) -> list:
    """The extension factories for the role, with the parameters given and nothing else."""
    if not args.deflate:
        return []
    client_bits = args.client_max_window_bits
    if args.role == "client":
        factory = ClientPerMessageDeflateFactory(
            server_no_context_takeover=args.server_no_context_takeover,
            client_no_context_takeover=args.client_no_context_takeover,
            server_max_window_bits=args.server_max_window_bits,
            client_max_window_bits=client_offer_bits(client_bits),
        )
    else:
        if client_bits in ("bare", "omit"):
            raise SystemExit("a server's --client-max-window-bits takes a number")
        factory = ServerPerMessageDeflateFactory(
            server_no_context_takeover=args.server_no_context_takeover,
            client_no_context_takeover=args.client_no_context_takeover,
            server_max_window_bits=args.server_max_window_bits,
            client_max_window_bits=None if client_bits is None else int(client_bits),
        )
    return [factory]


def client_offer_bits(value: str | None) -> int | bool | None:
    """A client's client_max_window_bits: valueless by default and for "bare", absent for
    "omit", else the number."""
    if value in (None, "bare"):
        return True
    if value == "omit":
        return None
    return int(value)


async def run(args: argparse.Namespace) -> None:
    options = dict(
        extensions=extensions(args),
        compression=None,  # exactly the factories above, not the library's defaults
        max_size=MAX_SIZE,
        ping_interval=None,
    )
    if args.role == "client":
        async with connect(args.url, **options) as ws:
            await exchange(ws, ws.response.headers.get("Sec-WebSocket-Extensions"), "client")
        return
    finished = asyncio.get_running_loop().create_future()

    async def handler(ws) -> None:
        header = ws.response.headers.get("Sec-WebSocket-Extensions")
        try:
            await exchange(ws, header, "server")
        finally:
            if not finished.done():
                finished.set_result(None)

    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = server.sockets[0].getsockname()[1]
        out(f"listening {port}")
        await finished


async def exchange(ws, header: str | None, role: str) -> None:
    """Echoes data messages and runs the test's commands until the connection closes."""
    out(f"extensions {header or 'none'}")
    out(f"deflate {deflate_view(ws, role)}")
    last: str | bytes = b""
    received = 0
    try:
        async for message in ws:
            received += 1
            if isinstance(message, str) and message.startswith(PREFIX):
                name, _, arg = message[len(PREFIX) :].partition(" ")
                if name == "fragment":
                    await ws.send(split(last, int(arg)))
                elif name == "ping":
                    # The connection reads in the background, so the pong arrives meanwhile.
                    pong = await ws.ping(arg)
                    await pong
                    await ws.send(f"{PREFIX}pong {arg}")
                elif name == "close":
                    await ws.close(1000, arg)
                else:
                    raise ValueError(f"unknown command {message!r}")
                continue
            last = message
            await ws.send(message)
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    out(f"received {received}")
    out(f"closed {ws.close_code} {ws.close_reason or ''}")


def deflate_view(ws, role: str) -> str:
    """The parameters websockets put in force, from its extension object."""
    for extension in ws.protocol.extensions:
        if isinstance(extension, PerMessageDeflate):
            local = "client" if role == "client" else "server"
            remote = "server" if role == "client" else "client"
            params = {
                f"{local}_no_context_takeover": extension.local_no_context_takeover,
                f"{remote}_no_context_takeover": extension.remote_no_context_takeover,
                f"{local}_max_window_bits": extension.local_max_window_bits,
                f"{remote}_max_window_bits": extension.remote_max_window_bits,
            }
            return " ".join(
                f"{name}={int(params[name])}"
                for name in (
                    "server_no_context_takeover",
                    "client_no_context_takeover",
                    "server_max_window_bits",
                    "client_max_window_bits",
                )
            )
    return "none"


def split(data: str | bytes, count: int) -> list:
    """Splits a message into `count` nearly equal fragments (at code points for text)."""
    size = max(1, -(-len(data) // count))
    return [data[start : start + size] for start in range(0, len(data), size)] or [data]


def out(line: str) -> None:
    print(line, flush=True)


def fail(message: str) -> None:
    print(f"websockets_peer: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
