// The stock socket.io-client against the wsio events server started by
// tests/events_interop.rs. Usage: node interop.mjs PORT. Exits non-zero on the first failure.
import assert from "node:assert/strict";
import { io } from "socket.io-client";

const port = process.argv[2];
const base = `http://127.0.0.1:${port}`;
const open = [];

// Each test runs twice: WebSocket only, then with socket.io-client's default options (HTTP
// long-polling first, then the upgrade to WebSocket).
const modes = {
  websocket: { transports: ["websocket"] },
  default: {},
};
let mode = "websocket";

function client(namespace = "/", options = {}) {
  const socket = io(base + namespace, {
    ...modes[mode],
    reconnection: false,
    forceNew: true,
    ...options,
  });
  open.push(socket);
  return socket;
}

function within(ms, what, executor) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    executor(
      (value) => { clearTimeout(timer); resolve(value); },
      (error) => { clearTimeout(timer); reject(error); },
    );
  });
}

const once = (socket, event, ms = 3000) =>
  within(ms, event, (resolve) => socket.once(event, (...args) => resolve(args)));

async function connected(namespace, options) {
  const socket = client(namespace, options);
  await within(3000, `connect ${namespace}`, (resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return socket;
}

const call = (socket, event, ...args) =>
  within(3000, `ack of ${event}`, (resolve) => socket.emit(event, ...args, (...reply) => resolve(reply)));

/** Resolves to the events `socket` received in `ms`. */
function collect(socket, event, ms = 300) {
  const seen = [];
  const listener = (...args) => seen.push(args);
  socket.on(event, listener);
  return new Promise((resolve) => setTimeout(() => { socket.off(event, listener); resolve(seen); }, ms));
}

const tests = {
  async "connect to the default namespace"() {
    const socket = await connected("/");
    assert.equal(socket.connected, true);
    assert.equal(typeof socket.id, "string");
    assert.ok(socket.id.length > 0);
    if (mode === "websocket") {
      assert.equal(socket.io.engine.transport.name, "websocket");
    } else {
      // Connected over polling; the upgrade follows.
      if (socket.io.engine.transport.name !== "websocket") {
        await within(3000, "upgrade", (resolve) => socket.io.engine.once("upgrade", resolve));
      }
      assert.equal(socket.io.engine.transport.name, "websocket");
      assert.deepEqual(await call(socket, "echo", { after: "upgrade" }), [{ after: "upgrade" }]);
    }
  },

  async "polling only: events, acks, binary and order"() {
    const socket = await connected("/", { transports: ["polling"] });
    assert.equal(socket.io.engine.transport.name, "polling");
    const replies = await Promise.all([1, 2, 3].map((n) => call(socket, "echo", n, { z: n, a: [n] })));
    assert.deepEqual(replies, [1, 2, 3].map((n) => [n, { z: n, a: [n] }]));
    assert.deepEqual(JSON.stringify(replies[0][1]), '{"z":1,"a":[1]}', "key order kept");
    const [echoed] = await call(socket, "binary", Buffer.from([9, 8, 7]));
    assert.deepEqual([...echoed], [9, 8, 7]);
  },

  async "broadcast with acknowledgements"() {
    const [a, b] = await Promise.all([connected("/"), connected("/")]);
    a.on("poll", (question, callback) => callback(`a: ${question}`));
    b.on("poll", (question, callback) => callback(`b: ${question}`));
    await call(a, "join", "pollers");
    await call(b, "join", "pollers");
    const [result] = await call(a, "poll-all", "ready?");
    assert.ok(result.ok, JSON.stringify(result));
    for (const answer of ["a: ready?", "b: ready?"]) {
      assert.ok(result.replies.includes(answer), JSON.stringify(result));
    }
  },

  async "namespace middleware refuses with a message and data"() {
    const refused = client("/guarded");
    const [error] = await once(refused, "connect_error");
    assert.equal(error.message, "who are you?");
    assert.deepEqual(error.data, { need: "user" });
    const admitted = client("/guarded", { auth: { user: "ann" } });
    const [user, handshake] = await once(admitted, "welcome");
    assert.equal(user, "ann");
    assert.equal(handshake.address.startsWith("127.0.0.1"), true, JSON.stringify(handshake));
    assert.equal(handshake.query.EIO, "4");
  },

  async "reconnection after the server drops the connection"() {
    const socket = client("/", { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
    await once(socket, "connect");
    const firstId = socket.id;
    const reconnected = once(socket.io, "reconnect", 5000);
    socket.emit("drop");
    await reconnected;
    if (!socket.connected) await once(socket, "connect");
    assert.notEqual(socket.id, firstId);
    assert.deepEqual(await call(socket, "echo", "back"), ["back"]);
  },

  async "events with acknowledgements, client to server"() {
    const socket = await connected("/");
    assert.deepEqual(await call(socket, "echo", 1, "two", { three: [3] }, null), [1, "two", { three: [3] }, null]);
    assert.deepEqual(await call(socket, "echo"), []);
    const big = Number.MAX_SAFE_INTEGER;
    assert.deepEqual(await call(socket, "echo", big, -0.5, "é😀"), [big, -0.5, "é😀"]);
  },

  async "events with acknowledgements, server to client"() {
    const socket = await connected("/");
    socket.on("question", (question, callback) => callback(`answer to ${question}`, 42));
    const answer = once(socket, "answer");
    socket.emit("ask", "life");
    assert.deepEqual(await answer, [["answer to life", 42]]);
  },

  async "rooms and broadcast"() {
    const [a, b, c] = await Promise.all([connected("/"), connected("/"), connected("/")]);
    const [rooms] = await call(a, "join", "red");
    assert.deepEqual([...rooms].sort(), [a.id, "red"].sort());
    await call(b, "join", "red");

    let heard = [collect(a, "room"), collect(b, "room"), collect(c, "room")];
    assert.deepEqual(await call(c, "to", "red", "hello red"), [2]);
    heard = await Promise.all(heard);
    assert.deepEqual(heard, [[["hello red"]], [["hello red"]], []]);

    heard = [collect(a, "room"), collect(b, "room")];
    assert.deepEqual(await call(a, "to", "red", "from a"), [1]);
    heard = await Promise.all(heard);
    assert.deepEqual(heard, [[], [["from a"]]], "the sender is left out");

    heard = [collect(a, "others"), collect(b, "others"), collect(c, "others")];
    a.emit("others", "x");
    heard = await Promise.all(heard);
    assert.deepEqual(heard.map((events) => events.length), [0, 1, 1]);

    heard = [collect(a, "all"), collect(b, "all"), collect(c, "all")];
    b.emit("all", { n: 1 });
    heard = await Promise.all(heard);
    assert.deepEqual(heard, [[[{ n: 1 }]], [[{ n: 1 }]], [[{ n: 1 }]]]);
  },

  async "binary both ways"() {
    const socket = await connected("/");
    const event = once(socket, "binary");
    const [echoed] = await call(socket, "binary", Buffer.from([1, 2, 3, 255]));
    assert.ok(Buffer.isBuffer(echoed));
    assert.deepEqual([...echoed], [1, 2, 3, 255]);
    const [meta, nested] = await event;
    assert.deepEqual(meta, { len: 4 });
    assert.deepEqual([...nested.nested[0]], [2, 4, 6, 254]);
  },

  async "namespaces with an auth hook"() {
    const refused = client("/admin", { auth: { token: "wrong" } });
    const [error] = await once(refused, "connect_error");
    assert.equal(error.message, "not authorized");
    assert.deepEqual(error.data, { need: "token" });

    const unknown = client("/nope");
    const [missing] = await once(unknown, "connect_error");
    assert.equal(missing.message, "Invalid namespace");

    const admin = client("/admin", { auth: { token: "secret" } });
    const [namespace, token] = await once(admin, "welcome");
    assert.deepEqual([namespace, token], ["/admin", "secret"]);
    assert.equal(admin.connected, true);
  },

  async "disconnect from either side"() {
    const observer = await connected("/");
    const kicked = await connected("/");
    const disconnected = once(kicked, "disconnect");
    kicked.emit("kick");
    const [reason] = await disconnected;
    assert.equal(reason, "io server disconnect");

    const leaving = await connected("/");
    leaving.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const [reasons] = await call(observer, "reasons");
    assert.ok(reasons.includes("server namespace disconnect"), reasons);
    assert.ok(reasons.includes("client namespace disconnect"), reasons);
  },

  async "heartbeat: pings arrive, and a client that stops answering is dropped"() {
    const socket = await connected("/");
    let pings = 0;
    socket.io.engine.on("ping", () => pings++);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.ok(pings >= 2, `${pings} pings in 1 s with a 300 ms interval`);
    assert.equal(socket.connected, true);

    // Play dead: engine.io-client answers pings through its (internal) _sendPacket.
    const engine = socket.io.engine;
    const sendPacket = engine._sendPacket.bind(engine);
    engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : sendPacket(type, ...rest));
    const [reason] = await once(socket, "disconnect", 3000);
    assert.equal(reason, "transport close");
    const observer = await connected("/");
    const [reasons] = await call(observer, "reasons");
    assert.ok(reasons.includes("ping timeout"), reasons);
  },

};

let failed = 0;
for (mode of Object.keys(modes)) {
  for (const [name, test] of Object.entries(tests)) {
    const started = Date.now();
    try {
      await test();
      console.log(`ok   [${mode}] ${name} (${Date.now() - started} ms)`);
    } catch (error) {
      failed++;
      console.log(`FAIL [${mode}] ${name}: ${error.stack ?? error}`);
    }
    for (const socket of open.splice(0)) socket.disconnect();
  }
}
console.log(failed ? `${failed} failed` : "all passed");
process.exit(failed ? 1 : 0);
