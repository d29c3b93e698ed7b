// The Node half of a mixed cluster (tests/events_redis.rs, `redis_mixed_cluster_with_node`):
// a stock socket.io 4.x server with @socket.io/redis-adapter 8.x on REDIS_URL, and two stock
// socket.io-client sockets, one on this server and one on the wsio node at WSIO_URL, both in
// room "r". It checks broadcasts, fetchSockets, socketsJoin and serverSideEmit both ways, prints
// one line per check and a closing "N passed, N failed" line, and exits non-zero on a failure.
// It exits when its stdin closes too, so it never outlives the test that started it.
"use strict";

const assert = require("node:assert/strict");
const { createServer } = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");
const { io: connect } = require("socket.io-client");

const WAIT = 5000;

function once(socket, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" within ${WAIT} ms`)), WAIT);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

async function main() {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter(pub, sub), transports: ["websocket"] });
  io.on("connection", (socket) => {
    for (const room of socket.handshake.auth.rooms || []) socket.join(room);
  });
  io.on("ask", (question, callback) => callback(`node-answer:${question}`));
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));

  const options = { transports: ["websocket"], reconnection: false, auth: { rooms: ["r"] } };
  const onNode = connect(`http://127.0.0.1:${http.address().port}`, options);
  const onWsio = connect(process.env.WSIO_URL, options);
  await Promise.all([once(onNode, "connect"), once(onWsio, "connect")]);

  let passed = 0;
  let failed = 0;
  async function check(name, body) {
    try {
      await body();
      passed += 1;
      console.log(`ok: ${name}`);
    } catch (error) {
      failed += 1;
      console.log(`FAILED: ${name}: ${error && error.stack}`);
    }
  }

  await check("serverCount counts the Node and the wsio node", async () => {
    assert.equal(await io.of("/").adapter.serverCount(), 2);
  });

  await check("a broadcast from Node reaches the wsio node's client, binary included", async () => {
    const both = Promise.all([once(onWsio, "from-node"), once(onNode, "from-node")]);
    io.to("r").emit("from-node", "hi", Buffer.from([1, 2, 3]));
    const [[text, data], [nodeText]] = await both;
    assert.equal(text, "hi");
    assert.deepEqual([...data], [1, 2, 3]);
    assert.equal(nodeText, "hi");
  });

  await check("a broadcast from wsio reaches the Node server's client, binary included", async () => {
    const both = Promise.all([once(onNode, "from-wsio"), once(onWsio, "from-wsio")]);
    onWsio.emit("please-broadcast");
    const [[text, data]] = await both;
    assert.equal(text, "hi");
    assert.deepEqual([...data], [4, 5, 6]);
  });

  await check("fetchSockets on Node sees the wsio node's socket", async () => {
    const sockets = await io.in("r").fetchSockets();
    const ids = sockets.map((socket) => socket.id).sort();
    assert.deepEqual(ids, [onNode.id, onWsio.id].sort());
    const remote = sockets.find((socket) => socket.id === onWsio.id);
    assert.ok(remote.rooms.has("r"), `rooms ${[...remote.rooms]}`);
    assert.deepEqual(remote.handshake.auth, { rooms: ["r"] });
  });

  await check("fetch_sockets on wsio sees the Node server's socket", async () => {
    const ids = await onWsio.timeout(WAIT).emitWithAck("please-fetch");
    assert.deepEqual(ids.sort(), [onNode.id, onWsio.id].sort());
  });

  await check("socketsJoin from Node moves the wsio node's socket", async () => {
    io.in(onWsio.id).socketsJoin("joined");
    const arrived = once(onWsio, "in-joined");
    io.to("joined").emit("in-joined");
    await arrived;
  });

  await check("serverSideEmitWithAck from Node is answered by wsio", async () => {
    const replies = await io.serverSideEmitWithAck("ping-wsio", 1);
    assert.deepEqual(replies, ["pong-wsio:1"]);
  });

  await check("server_side_emit_with_ack from wsio is answered by Node", async () => {
    const replies = await onWsio.timeout(WAIT).emitWithAck("please-ask");
    assert.deepEqual(replies, ["node-answer:who?"]);
  });

  await check("disconnectSockets from Node reaches the wsio node's socket", async () => {
    const gone = once(onWsio, "disconnect");
    io.in(onWsio.id).disconnectSockets();
    const [reason] = await gone;
    assert.equal(reason, "io server disconnect");
  });

  console.log(`redis-interop: ${passed} passed, ${failed} failed`);
  onNode.close();
  io.close();
  await Promise.allSettled([pub.quit(), sub.quit()]);
  process.exit(failed === 0 ? 0 : 1);
}

process.stdin.on("end", () => process.exit(2));
process.stdin.resume();
main().catch((error) => {
  console.log(`FAILED: ${error && error.stack}`);
  process.exit(1);
});
