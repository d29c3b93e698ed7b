// A stock socket.io 4.x server for the wsio client's interop tests (tests/events_client_interop.rs).
//
// Four servers on 127.0.0.1, on ports the OS picks, printed as one JSON line on stdout:
//   {"port": P, "fastPort": F, "pollingPort": L, "upgradePort": U}
// P has socket.io's default heartbeat; F pings every 300 ms and waits 200 ms for the pong, for
// the heartbeat-timeout scenario; pollingPort serves P's events over long-polling only;
// upgradePort serves them with socket.io's default transports (long-polling, then the upgrade
// to WebSocket). The process exits when its stdin closes, so it never outlives the test that
// started it.
"use strict";

const { createServer } = require("node:http");
const { Server } = require("socket.io");

function listen(options, setup) {
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"], ...options });
  setup(io);
  return new Promise((resolve) => {
    http.listen(0, "127.0.0.1", () => resolve({ io, port: http.address().port }));
  });
}

// How many times each `flaky` key was received, across connections.
const attempts = new Map();

// The main server: every event the tests use.
function main(io) {
  io.on("connection", (socket) => {
    // Retries: acknowledged only from the (failures + 1)-th attempt of a key on.
    socket.on("flaky", (key, failures, ack) => {
      const count = (attempts.get(key) || 0) + 1;
      attempts.set(key, count);
      if (count > failures) ack(count);
    });
    socket.on("attempts", (key, ack) => ack(attempts.get(key) || 0));

    // Traffic across the upgrade: `tock`s echoed as `tick`s, a stream of `beat`s.
    socket.on("tock", (i) => socket.emit("tick", i));
    socket.on("sync", (ack) => ack());
    socket.on("stream", (count) => {
      let i = 0;
      const timer = setInterval(() => {
        if (i >= count || !socket.connected) return clearInterval(timer);
        socket.emit("beat", i++);
      }, 2);
    });
    socket.on("transport", (ack) => ack(socket.conn.transport.name));

    // Acks: the server answers the client's events.
    socket.on("sum", (a, b, ack) => ack(a + b));
    socket.on("echo", (...args) => {
      const ack = args.pop();
      ack(...args);
    });
    socket.on("whoami", (ack) => ack({ id: socket.id, conn: socket.conn.id, nsp: socket.nsp.name }));

    // The other way: the server asks the client and relays the client's answer.
    socket.on("ask", async (question, ack) => {
      try {
        const answer = await socket.timeout(2000).emitWithAck("question", question);
        ack({ answer });
      } catch (error) {
        ack({ error: String(error) });
      }
    });

    // Binary from the server, top-level and nested.
    socket.on("send-binary", () => {
      socket.emit("binary", Buffer.from([1, 2, 3]), { name: "nested", data: Buffer.from("hello") });
    });
    // Reports what the client's binary looked like on this side.
    socket.on("inspect", (value, ack) => {
      ack({
        isBuffer: Buffer.isBuffer(value),
        bytes: Buffer.isBuffer(value) ? [...value] : null,
      });
    });

    // Rooms and broadcast.
    socket.on("join", (room, ack) => {
      socket.join(room);
      ack(room);
    });
    socket.on("to-room", (room, message) => socket.to(room).emit("room-message", message));
    socket.on("broadcast", (message) => io.emit("announcement", message));

    // The server ends the socket: the client must not reconnect.
    socket.on("kick-me", () => socket.disconnect(true));

    socket.on("disconnect", (reason) => io.emit("left", { id: socket.id, reason }));
  });

  // A namespace behind an auth middleware.
  const admin = io.of("/admin");
  admin.use((socket, next) => {
    if (socket.handshake.auth && socket.handshake.auth.token === "secret") {
      return next();
    }
    const error = new Error("not authorized");
    error.data = { code: 401 };
    next(error);
  });
  admin.on("connection", (socket) => {
    socket.on("whoami", (ack) =>
      ack({ id: socket.id, conn: socket.conn.id, nsp: socket.nsp.name, user: socket.handshake.auth.user }),
    );
  });
}

// The fast-heartbeat server: tells everyone why a socket left.
function fast(io) {
  io.on("connection", (socket) => {
    socket.on("whoami", (ack) => ack({ id: socket.id }));
    socket.on("disconnect", (reason) => io.emit("left", { id: socket.id, reason }));
  });
}

(async () => {
  const servers = await Promise.all([
    listen({}, main),
    listen({ pingInterval: 300, pingTimeout: 200 }, fast),
    // Long-polling only, with a quick heartbeat: WebSocket requests are refused.
    listen({ transports: ["polling"], pingInterval: 300, pingTimeout: 200 }, main),
    // socket.io's default transports: long-polling first, then the upgrade.
    listen({ transports: ["polling", "websocket"] }, main),
  ]);
  const ports = {
    port: servers[0].port,
    fastPort: servers[1].port,
    pollingPort: servers[2].port,
    upgradePort: servers[3].port,
  };
  process.stdout.write(JSON.stringify(ports) + "\n");
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("close", () => process.exit(0));
})();
