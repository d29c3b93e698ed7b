"""A python-socketio server (aiohttp) for the wsio client (tests/events_python_interop.rs).

Listens on a port of 127.0.0.1 the OS picks and prints it as one JSON line, {"port": P}; exits
when its stdin closes, so it never outlives the test that started it. As python-socketio
does, what the connect handler emits goes out before the answer to the client's CONNECT.
"""

import asyncio
import json
import sys

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp")


@sio.event
async def connect(sid, environ, auth):
    if not isinstance(auth, dict) or auth.get("token") != "letmein":
        raise socketio.exceptions.ConnectionRefusedError("not authorized", {"need": "token"})
    await sio.emit("greet", (auth.get("user"), b"\x01\x02"), to=sid)


@sio.on("echo")
async def echo(sid, *args):
    return args


@sio.on("ask")
async def ask(sid, text):
    answer = await sio.call("question", text, to=sid, timeout=10)
    await sio.emit("answer", answer, to=sid)


@sio.on("binary")
async def binary(sid, data):
    await sio.emit("binary", ({"len": len(data)}, {"nested": [bytes(b * 2 % 256 for b in data)]}),
                   to=sid)


@sio.on("kick")
async def kick(sid):
    await sio.disconnect(sid)


@sio.on("whoami", namespace="/admin")
async def whoami(sid):
    return "/admin", sid


async def main():
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    # Until the test closes stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


asyncio.run(main())
