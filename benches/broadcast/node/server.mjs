// The Node side of the broadcast benchmark: socket.io 4 with the same settings as the wsio
// server (WebSocket transport only unless --polling, which adds long-polling, socket.io's
// default; permessage-deflate off unless --deflate, then on for messages of 1 KiB and more,
// socket.io's own threshold).
//
//   node server.mjs [--deflate] [--polling] [--redis URL]   prints "listening on 127.0.0.1:PORT"
//
// --redis makes the server a node of a cluster over the Redis at URL (@socket.io/redis-adapter
// on node-redis clients): its broadcasts reach the sockets of the other nodes too.
//
// A client's "go" event, with a count, a payload string and a burst size, makes the server
// emit "msg" with that payload to every connected socket, count times, yielding to the event
// loop after each burst of emits so the sockets' writes interleave with the broadcast as they
// do in the wsio server.
import { createServer } from "node:http";
import { Server } from "socket.io";

const deflate = process.argv.includes("--deflate");
const polling = process.argv.includes("--polling");
const redisAt = process.argv.indexOf("--redis");
let adapter;
if (redisAt >= 0) {
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const { createClient } = await import("redis");
  const pub = createClient({ url: process.argv[redisAt + 1] });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  adapter = createAdapter(pub, sub);
}
const http = createServer();
const io = new Server(http, {
  transports: polling ? ["polling", "websocket"] : ["websocket"],
  serveClient: false,
  perMessageDeflate: deflate ? { threshold: 1024 } : false,
  ...(adapter && { adapter }),
});

io.on("connection", (socket) => {
  socket.on("go", async (count, payload, burst = 1) => {
    for (let sent = 1; sent <= count; sent++) {
      io.emit("msg", payload);
      if (sent % burst === 0) {
        await new Promise(setImmediate);
      }
    }
  });
});

http.listen(0, "127.0.0.1", () => {
  const { address, port } = http.address();
  console.log(`listening on ${address}:${port}`);
});
