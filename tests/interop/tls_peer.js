#!/usr/bin/env node
// A Node `ws` peer for wsio's TLS interop run (tls-run): a wss:// echo server, or a client
// that checks a wss:// echo server, trusting only the CA made for the run.
//
//   node tls_peer.js server CERT_PEM KEY_PEM   prints "listening on PORT", echoes until killed
//   node tls_peer.js client URL CA_PEM         exits 0 once every echo came back unchanged
'use strict';

const fs = require('fs');
const https = require('https');
const { WebSocket, WebSocketServer } = require('ws');

function fail(message) {
  process.stderr.write(`tls_peer.js: ${message}\n`);
  process.exit(1);
}

function server(cert, key) {
  const http = https.createServer({
    cert: fs.readFileSync(cert),
    key: fs.readFileSync(key),
    ALPNProtocols: ['http/1.1'],
  });
  const wss = new WebSocketServer({ server: http, perMessageDeflate: true, maxPayload: 64 << 20 });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  http.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening on ${http.address().port}\n`);
  });
}

// Text, binary and 1 MiB of each, sent one at a time; each echo must equal what was sent.
function messages() {
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 13 & 0xff;
  return [
    { data: 'hello over tls', binary: false },
    { data: Buffer.from([0, 1, 2, 255]), binary: true },
    { data: 'abcdefghij'.repeat(1 << 17), binary: false },
    { data: big, binary: true },
  ];
}

function client(url, ca) {
  const ws = new WebSocket(url, {
    ca: fs.readFileSync(ca),
    perMessageDeflate: true,
    maxPayload: 64 << 20,
  });
  const timer = setTimeout(() => fail('timed out'), 30000);
  const queue = messages();
  let expected = null;
  const next = () => {
    expected = queue.shift();
    if (!expected) {
      ws.close(1000, 'done');
      return;
    }
    ws.send(expected.data, { binary: expected.binary });
  };
  ws.on('open', () => {
    if (!ws.extensions.includes('permessage-deflate')) fail(`no deflate: "${ws.extensions}"`);
    next();
  });
  ws.on('message', (data, isBinary) => {
    const sent = Buffer.from(expected.data);
    if (isBinary !== expected.binary || !Buffer.from(data).equals(sent)) {
      fail(`echo of a ${sent.length}-byte message differs`);
    }
    next();
  });
  ws.on('close', (code) => {
    clearTimeout(timer);
    if (code !== 1000 || queue.length > 0) fail(`closed with ${code}`);
    process.stdout.write('ok\n');
  });
  ws.on('error', (error) => fail(`${error.message}`));
}

const [role, a, b] = process.argv.slice(2);
if (role === 'server' && a && b) server(a, b);
else if (role === 'client' && a && b) client(a, b);
else fail('usage: tls_peer.js server CERT KEY | client URL CA');
