// spec/support/stripe_node_api.js — the official Stripe Node library acting
// as a connected account against the fake Connect, for
// spec/integration/stripe_node_spec.lua.
//
//   node stripe_node_api.js CONFIG.json
//     CONFIG.json: {"port":N,"secret_key":"sk_test_…","account":"acct_…","email":…}
//   creates a customer on the account (stripeAccount request option, an
//   idempotency key of its own) and prints
//   {"ok":true,"customer":{…},"replayed":{…},"idempotency_key":…} or
//   {"ok":false,"class":…,"message":…,"status":…}.
// The library is loaded from $STRIPE_NODE_MODULES (default build/node/node_modules).
'use strict';
const fs = require('fs');
const path = require('path');

const modules = process.env.STRIPE_NODE_MODULES || path.resolve('build/node/node_modules');
const Stripe = require(path.join(modules, 'stripe'));

async function run(config) {
  const stripe = new Stripe(config.secret_key, {
    host: '127.0.0.1', port: config.port, protocol: 'http', maxNetworkRetries: 2, timeout: 10000,
  });
  const key = 'stripe-node-spec-' + Date.now();
  const customer = await stripe.customers.create(
    { email: config.email, metadata: { from: 'stripe-node' } },
    { stripeAccount: config.account, idempotencyKey: key });
  // the same key and body again: Stripe answers the first object
  const replayed = await stripe.customers.create(
    { email: config.email, metadata: { from: 'stripe-node' } },
    { stripeAccount: config.account, idempotencyKey: key });
  const plain = (o) => { const p = {}; for (const k of Object.keys(o)) if (k !== 'lastResponse') p[k] = o[k]; return p; };
  return { ok: true, customer: plain(customer), replayed: plain(replayed), idempotency_key: key };
}

run(JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))).then(
  (r) => process.stdout.write(JSON.stringify(r) + '\n'),
  (err) => process.stdout.write(JSON.stringify({ ok: false, class: err.constructor && err.constructor.name,
    message: err.message, status: err.statusCode }) + '\n'),
);
