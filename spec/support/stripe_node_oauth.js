// spec/support/stripe_node_oauth.js — the official Stripe Node library's
// OAuth calls against the fake Connect, driven by
// spec/integration/stripe_node_spec.lua.
//
//   node stripe_node_oauth.js STEPS.json
//     STEPS.json: {"port":N,"secret_key":"sk_test_…","client_id":"ca_…","steps":[…]}
//     steps, run in order:
//       {"op":"token","code":…}                    stripe.oauth.token({grant_type:'authorization_code', code})
//       {"op":"refresh","refresh_token":…,"scope"?} stripe.oauth.token({grant_type:'refresh_token', …})
//       {"op":"deauthorize","stripe_user_id":…}    stripe.oauth.deauthorize({client_id, stripe_user_id})
//     each -> {"ok":true,"result":{…}} | {"ok":false,"class":err.constructor.name,
//             "type":err.type,"code":err.code,"message":err.message,"status":err.statusCode}
//     prints the array of results as JSON on stdout.
//
// The client points every base address (api and connect) at the fake through
// the constructor's host/port/protocol: stripe-node's resolveBaseAddress
// answers the instance host for 'connect' once it is not the default.
// maxNetworkRetries is 0 so each step is exactly one request.
// The library is loaded from $STRIPE_NODE_MODULES (default build/node/node_modules).
'use strict';
const fs = require('fs');
const path = require('path');

const modules = process.env.STRIPE_NODE_MODULES || path.resolve('build/node/node_modules');
const Stripe = require(path.join(modules, 'stripe'));

async function run(config) {
  const stripe = new Stripe(config.secret_key, {
    host: '127.0.0.1',
    port: config.port,
    protocol: 'http',
    maxNetworkRetries: 0,
    timeout: 10000,
  });
  stripe.setClientId ? stripe.setClientId(config.client_id) : null;
  const results = [];
  for (const step of config.steps) {
    try {
      let result;
      if (step.op === 'token') {
        result = await stripe.oauth.token({ grant_type: 'authorization_code', code: step.code });
      } else if (step.op === 'refresh') {
        const params = { grant_type: 'refresh_token', refresh_token: step.refresh_token };
        if (step.scope) params.scope = step.scope;
        result = await stripe.oauth.token(params);
      } else if (step.op === 'deauthorize') {
        result = await stripe.oauth.deauthorize({ client_id: config.client_id, stripe_user_id: step.stripe_user_id });
      } else {
        throw new Error('unknown op ' + step.op);
      }
      const plain = {};
      for (const k of Object.keys(result)) if (k !== 'lastResponse') plain[k] = result[k];
      results.push({ ok: true, result: plain });
    } catch (err) {
      results.push({
        ok: false,
        class: err.constructor && err.constructor.name,
        type: err.type,
        code: err.code,
        message: err.message,
        status: err.statusCode,
      });
    }
  }
  return results;
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node stripe_node_oauth.js STEPS.json\n');
  process.exit(2);
}
run(JSON.parse(fs.readFileSync(file, 'utf8'))).then(
  (results) => process.stdout.write(JSON.stringify(results) + '\n'),
  (err) => { process.stderr.write(String(err && err.stack || err) + '\n'); process.exit(1); },
);
