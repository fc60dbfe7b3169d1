// spec/support/stripe_node_webhook.js — the official Stripe Node library's
// webhook helpers, driven by spec/integration/stripe_node_webhook_spec.lua.
//
//   node stripe_node_webhook.js batch CASES.json
//     CASES.json: an array of
//       {"op":"generate","payload":…,"secret":…,"timestamp":N?,"scheme":"v1"?}
//         -> {"header": stripe.webhooks.generateTestHeaderString(…)}
//       {"op":"construct","payload":…,"header":…,"secret":…,"tolerance":N?}
//         -> {"ok":true,"id":…,"type":…,"account":…}
//          | {"ok":false,"error_type":…,"message":…}   (stripe.webhooks.constructEvent)
//     prints the array of results as JSON on stdout.
//   node stripe_node_webhook.js serve SECRET
//     an HTTP server on 127.0.0.1 (ephemeral port; prints the port on stdout):
//     POST /webhooks verifies the raw body with constructEvent -> 200 with the event's
//     id/type/account, or 400 {"error": message}; POST /quit answers and exits.
//     Exits by itself after 120 s so a failed spec leaves nothing behind.
//
// The library is loaded from $STRIPE_NODE_MODULES (default build/node/node_modules).
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const modules = process.env.STRIPE_NODE_MODULES || path.resolve('build/node/node_modules');
const Stripe = require(path.join(modules, 'stripe'));
const stripe = Stripe('sk_test_interop_not_used');

function construct(payload, header, secret, tolerance) {
  try {
    const ev = stripe.webhooks.constructEvent(payload, header, secret, tolerance);
    return { ok: true, id: ev.id, type: ev.type, account: ev.account === undefined ? null : ev.account };
  } catch (e) {
    return { ok: false, error_type: e.type || e.name, message: e.message };
  }
}

function runCase(c) {
  if (c.op === 'generate') {
    const opts = { payload: c.payload, secret: c.secret };
    if (c.timestamp !== undefined) opts.timestamp = c.timestamp;
    if (c.scheme !== undefined) opts.scheme = c.scheme;
    return { header: stripe.webhooks.generateTestHeaderString(opts) };
  }
  if (c.op === 'construct') return construct(c.payload, c.header, c.secret, c.tolerance);
  throw new Error('unknown op ' + c.op);
}

function batch(file) {
  const cases = JSON.parse(fs.readFileSync(file, 'utf8'));
  process.stdout.write(JSON.stringify(cases.map(runCase)) + '\n');
}

function serve(secret) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const reply = (status, obj) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      if (req.method === 'POST' && req.url === '/quit') {
        reply(200, { bye: true });
        server.close();
        setImmediate(() => process.exit(0));
        return;
      }
      if (req.method !== 'POST' || req.url !== '/webhooks') return reply(404, { error: 'not found' });
      // The raw bytes, as a Buffer: exactly what was signed.
      const r = construct(Buffer.concat(chunks), req.headers['stripe-signature'], secret);
      if (r.ok) reply(200, { received: true, id: r.id, type: r.type, account: r.account });
      else reply(400, { error: r.message });
    });
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(server.address().port + '\n');
  });
  setTimeout(() => process.exit(3), 120000);
}

const [mode, arg] = process.argv.slice(2);
if (mode === 'batch') batch(arg);
else if (mode === 'serve') serve(arg);
else {
  process.stderr.write('usage: stripe_node_webhook.js batch CASES.json | serve SECRET\n');
  process.exit(2);
}
