#!/usr/bin/env node
// A Node `ws` peer for wsio's interop tests: an echo server or a client, with
// permessage-deflate configured from the command line. See README.md for the line protocol.
//
//   node ws_peer.js server [DEFLATE OPTIONS]
//   node ws_peer.js client --url ws://127.0.0.1:PORT/ [DEFLATE OPTIONS]
//
// DEFLATE OPTIONS: --no-deflate, --server-no-context-takeover, --client-no-context-takeover,
// --server-max-window-bits N, --client-max-window-bits N|bare|omit, --timeout-ms N.
'use strict';

const { WebSocket, WebSocketServer } = require('ws');

const MAX_PAYLOAD = 64 << 20;

function parseArgs(argv) {
  const args = {
    role: argv[0],
    url: null,
    deflate: true,
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: null,
    clientMaxWindowBits: null,
    timeoutMs: 30000,
  };
  if (args.role !== 'server' && args.role !== 'client') {
    fail(`first argument must be "server" or "client", not ${args.role}`);
  }
  for (let i = 1; i < argv.length; i++) {
    const value = () => {
      if (i + 1 >= argv.length) fail(`${argv[i]} needs a value`);
      return argv[++i];
    };
    switch (argv[i]) {
      case '--url': args.url = value(); break;
      case '--no-deflate': args.deflate = false; break;
      case '--server-no-context-takeover': args.serverNoContextTakeover = true; break;
      case '--client-no-context-takeover': args.clientNoContextTakeover = true; break;
      case '--server-max-window-bits': args.serverMaxWindowBits = windowBits(value()); break;
      case '--client-max-window-bits': args.clientMaxWindowBits = clientWindowBits(value()); break;
      case '--timeout-ms': args.timeoutMs = Number(value()); break;
      default: fail(`unknown argument ${argv[i]}`);
    }
  }
  if (args.role === 'client' && !args.url) fail('client needs --url');
  return args;
}

function windowBits(text) {
  const bits = Number(text);
  if (!Number.isInteger(bits) || bits < 8 || bits > 15) fail(`bad window bits ${text}`);
  return bits;
}

// "bare": offered without a value (the ws default); "omit": not offered at all.
function clientWindowBits(text) {
  if (text === 'bare') return true;
  if (text === 'omit') return false;
  return windowBits(text);
}

// The `perMessageDeflate` option of ws: false, or the parameters with compression of every
// message (threshold 0), so even small and empty messages go through deflate.
function deflateOptions(args) {
  if (!args.deflate) return false;
  const options = { threshold: 0 };
  if (args.serverNoContextTakeover) options.serverNoContextTakeover = true;
  if (args.clientNoContextTakeover) options.clientNoContextTakeover = true;
  if (args.serverMaxWindowBits !== null) options.serverMaxWindowBits = args.serverMaxWindowBits;
  if (args.clientMaxWindowBits !== null) options.clientMaxWindowBits = args.clientMaxWindowBits;
  return options;
}

function out(line) {
  process.stdout.write(`${line}\n`);
}

function fail(message) {
  process.stderr.write(`ws_peer: ${message}\n`);
  process.exit(1);
}

// What ws itself agreed to. ws has no public accessor for the parameters in force, so this reads
// the extension object it keeps per connection; RFC 7692 defaults fill the absent ones.
function deflateView(ws) {
  const extension = ws._extensions && ws._extensions['permessage-deflate'];
  if (!extension) return 'none';
  const params = extension.params;
  const bits = (value) => (typeof value === 'number' ? value : 15);
  return [
    `server_no_context_takeover=${params.server_no_context_takeover ? 1 : 0}`,
    `client_no_context_takeover=${params.client_no_context_takeover ? 1 : 0}`,
    `server_max_window_bits=${bits(params.server_max_window_bits)}`,
    `client_max_window_bits=${bits(params.client_max_window_bits)}`,
  ].join(' ');
}

// Splits `data` into `count` pieces of nearly equal length, at byte boundaries: a text message's
// fragments may split a code point, which the receiver must accept.
function split(data, count) {
  const pieces = [];
  const size = Math.ceil(data.length / count);
  for (let start = 0; start < data.length || pieces.length === 0; start += size) {
    pieces.push(data.subarray(start, start + size));
  }
  return pieces;
}

// Echoes data messages and runs the test's commands, in both roles.
function run(ws, extensionsHeader, done) {
  let last = { data: Buffer.alloc(0), isBinary: false };
  let received = 0;
  out(`extensions ${extensionsHeader || 'none'}`);
  out(`deflate ${deflateView(ws)}`);
  ws.on('message', (data, isBinary) => {
    received++;
    const text = isBinary ? null : data.toString();
    if (text !== null && text.startsWith('interop:')) {
      command(text.slice('interop:'.length));
      return;
    }
    last = { data, isBinary };
    ws.send(data, { binary: isBinary });
  });
  ws.on('pong', (data) => ws.send(`interop:pong ${data.toString()}`));
  ws.on('close', (code, reason) => {
    out(`received ${received}`);
    out(`closed ${code} ${reason.toString()}`);
    done();
  });
  ws.on('error', (error) => fail(`connection error: ${error.message}`));

  function command(text) {
    const space = text.indexOf(' ');
    const name = space < 0 ? text : text.slice(0, space);
    const arg = space < 0 ? '' : text.slice(space + 1);
    switch (name) {
      case 'fragment': {
        const pieces = split(last.data, Number(arg));
        pieces.forEach((piece, i) => {
          ws.send(piece, { binary: last.isBinary, fin: i === pieces.length - 1 });
        });
        break;
      }
      case 'ping': ws.ping(Buffer.from(arg)); break;
      case 'close': ws.close(1000, arg); break;
      default: fail(`unknown command ${text}`);
    }
  }
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const timer = setTimeout(() => fail(`timed out after ${args.timeoutMs} ms`), args.timeoutMs);
  const finish = () => {
    clearTimeout(timer);
    process.stdout.write('', () => process.exit(0));
  };
  const perMessageDeflate = deflateOptions(args);
  if (args.role === 'server') {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      perMessageDeflate,
      maxPayload: MAX_PAYLOAD,
    });
    let extensionsHeader = null;
    wss.on('headers', (headers) => {
      const prefix = 'sec-websocket-extensions:';
      const line = headers.find((header) => header.toLowerCase().startsWith(prefix));
      extensionsHeader = line ? line.slice(prefix.length).trim() : null;
    });
    wss.on('listening', () => out(`listening ${wss.address().port}`));
    wss.on('error', (error) => fail(`server error: ${error.message}`));
    wss.on('wsClientError', (error) => fail(`handshake failed: ${error.message}`));
    // One connection, then the process ends.
    wss.once('connection', (ws) => {
      wss.close();
      run(ws, extensionsHeader, finish);
    });
  } else {
    const ws = new WebSocket(args.url, { perMessageDeflate, maxPayload: MAX_PAYLOAD });
    let extensionsHeader = null;
    ws.on('upgrade', (response) => {
      extensionsHeader = response.headers['sec-websocket-extensions'] || null;
    });
    ws.on('unexpected-response', (_, response) => fail(`handshake got ${response.statusCode}`));
    ws.once('open', () => run(ws, extensionsHeader, finish));
    ws.on('error', (error) => fail(`connection error: ${error.message}`));
  }
}

main();
