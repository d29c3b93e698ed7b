"""python-socketio's client against a wsio events server (tests/events_python_interop.rs).

Usage: client.py URL. Runs every check once per transport setting (python-socketio's default,
long-polling then the upgrade; WebSocket only; long-polling only), prints one line per
setting, and exits non-zero at the first check that fails.
"""

import queue
import sys

import socketio

URL = sys.argv[1]
WAIT = 10


def check(transports):
    sio = socketio.Client(reconnection=False)
    events = queue.Queue()

    def record(name):
        return lambda *args: events.put((name, args))

    def expect(name):
        got, args = events.get(timeout=WAIT)
        assert got == name, f"expected {name}, got {got} {args}"
        return args

    sio.on("welcome", record("welcome"))
    sio.on("answer", record("answer"))
    sio.on("binary", record("binary"))
    sio.on("disconnect", record("disconnect"))
    # The server asks with an ack: the handler's return value is the answer.
    sio.on("question", lambda text: text.upper() + "!")

    sio.connect(URL, transports=transports, auth={"user": "py"}, wait_timeout=WAIT)
    expected = "polling" if transports == ["polling"] else "websocket"
    assert sio.transport() == expected, sio.transport()
    assert expect("welcome") == ("py",)

    # Acks with text, numbers, nulls, nesting and binary, both as arguments and nested.
    sent = ("text", 1.5, None, {"nested": [True, b"\x00\xff"]}, b"\x01\x02")
    back = sio.call("echo", sent, timeout=WAIT)
    assert back == sent, back

    # The server's own emit with an ack, answered by the handler above.
    sio.emit("ask", "why")
    assert expect("answer") == ("WHY!",)

    sio.emit("binary", b"\x01\x02\x80")
    meta, nested = expect("binary")
    assert meta == {"len": 3} and nested == {"nested": [b"\x02\x04\x00"]}, (meta, nested)

    # A refused namespace: the middleware's message reaches the client's connect_error.
    admin = socketio.Client(reconnection=False)
    refusals = queue.Queue()
    admin.on("connect_error", refusals.put, namespace="/admin")
    try:
        admin.connect(URL, transports=transports, namespaces=["/admin"], auth={"token": "no"},
                      wait_timeout=WAIT)
        raise AssertionError("/admin accepted a wrong token")
    except socketio.exceptions.ConnectionError:
        pass
    refusal = refusals.get(timeout=WAIT)
    assert "not authorized" in str(refusal), refusal
    admin.disconnect()

    # Disconnected by the server.
    sio.emit("kick")
    expect("disconnect")
    sio.wait()
    print(f"ok: python-socketio client, transports {transports or 'default'} ({expected})")


for transports in (None, ["websocket"], ["polling"]):
    check(transports)
