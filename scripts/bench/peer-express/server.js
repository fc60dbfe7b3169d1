// scripts/bench/peer-express/server.js — the bench's peer: the platform's three
// hot routes written the way a Node user would, with Express 5, the official
// `stripe` package and better-sqlite3 (one process, as a typical deployment of
// a small Express app).  Not a product: it exists to be measured against.
//
//   GET  /connect         a random state stored with the browser's binding
//                         cookie (sc_bind), 302 to stripe.oauth.authorizeUrl
//   GET  /oauth/callback  consume the state once (it must belong to this
//                         browser's cookie), stripe.oauth.token, store the
//                         account, 303 to /connected?account=…
//   POST /webhooks        stripe.webhooks.constructEvent on the raw body,
//                         de-duplicate by event id, apply a deauthorization
//   GET  /healthz
//
// Environment: PORT, STRIPE_SECRET_KEY, STRIPE_CLIENT_ID, PUBLIC_URL,
// STRIPE_CONNECT_BASE (http(s)://host:port of the token endpoint),
// STRIPE_WEBHOOK_SECRET, DATABASE (a SQLite file), PEER_NODE_MODULES (where npm
// installed the packages; default build/bench/peer-node/node_modules).
'use strict';
const path = require('path');
const crypto = require('crypto');

const modules = process.env.PEER_NODE_MODULES || path.resolve(__dirname, '../../../build/bench/peer-node/node_modules');
const express = require(path.join(modules, 'express'));
const cookieParser = require(path.join(modules, 'cookie-parser'));
const Stripe = require(path.join(modules, 'stripe'));
const Database = require(path.join(modules, 'better-sqlite3'));
const { open, MAX_AGE_MS } = require('./db');

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`peer: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const publicUrl = need('PUBLIC_URL');
const redirectUri = publicUrl + '/oauth/callback';
const secure = publicUrl.startsWith('https:');
const connectBase = new URL(process.env.STRIPE_CONNECT_BASE || 'https://connect.stripe.com');
const webhookSecret = need('STRIPE_WEBHOOK_SECRET');

const stripe = new Stripe(need('STRIPE_SECRET_KEY'), {
  host: connectBase.hostname,
  port: connectBase.port || (connectBase.protocol === 'https:' ? 443 : 80),
  protocol: connectBase.protocol.replace(':', ''),
  maxNetworkRetries: 0,
  timeout: 30000,
});
stripe.setClientId(need('STRIPE_CLIENT_ID'));

const db = open(Database, need('DATABASE'));
const insertState = db.prepare('INSERT INTO oauth_states (state, binding, expires_at) VALUES (?, ?, ?)');
const consumeState = db.prepare('DELETE FROM oauth_states WHERE state = ? AND binding = ? AND expires_at > ?');
const upsertAccount = db.prepare(`
  INSERT INTO accounts (id, status, scope, livemode, token_type, access_token, refresh_token,
                        stripe_publishable_key, connected_at, updated_at)
  VALUES (@id, 'connected', @scope, @livemode, @token_type, @access_token, @refresh_token,
          @stripe_publishable_key, @now, @now)
  ON CONFLICT(id) DO UPDATE SET status = 'connected', scope = excluded.scope, livemode = excluded.livemode,
    token_type = excluded.token_type, access_token = excluded.access_token,
    refresh_token = excluded.refresh_token, stripe_publishable_key = excluded.stripe_publishable_key,
    updated_at = excluded.updated_at`);
const rememberEvent = db.prepare('INSERT OR IGNORE INTO webhook_events (id, received_at) VALUES (?, ?)');
const disconnect = db.prepare(`UPDATE accounts SET status = 'disconnected', access_token = NULL,
  refresh_token = NULL, updated_at = ? WHERE id = ?`);

const BINDING = 'sc_bind';
const validBinding = (v) => typeof v === 'string' && /^[A-Za-z0-9_-]{32}$/.test(v);

const app = express();
app.disable('x-powered-by');

app.get('/healthz', (req, res) => res.type('text').send('ok'));

app.get('/connect', cookieParser(), (req, res) => {
  let binding = req.cookies[BINDING];
  if (!validBinding(binding)) binding = crypto.randomBytes(24).toString('base64url');
  const state = crypto.randomBytes(16).toString('base64url');
  insertState.run(state, binding, Date.now() + MAX_AGE_MS);
  res.cookie(BINDING, binding, { httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge: 30 * 24 * 3600 * 1000 });
  res.set('Cache-Control', 'no-store');
  res.redirect(302, stripe.oauth.authorizeUrl({ scope: 'read_write', redirect_uri: redirectUri, state }));
});

function page(res, status, title) {
  res.status(status).set('Cache-Control', 'no-store').type('html')
    .send(`<!doctype html><title>${title}</title><h1>${title}</h1><p><a href="/connect">Start again</a></p>`);
}

app.get('/oauth/callback', cookieParser(), async (req, res) => {
  const { code, state, error } = req.query;
  if (error) return page(res, error === 'access_denied' ? 200 : 400, 'You declined to connect');
  const binding = req.cookies[BINDING];
  if (typeof state !== 'string' || !validBinding(binding) ||
      consumeState.run(state, binding, Date.now()).changes !== 1) {
    return page(res, 403, 'This connection link is not valid');
  }
  if (typeof code !== 'string' || code === '') return page(res, 400, 'The answer from Stripe is incomplete');
  let token;
  try {
    token = await stripe.oauth.token({ grant_type: 'authorization_code', code });
  } catch (err) {
    console.error(`peer: token exchange failed: ${err.type || err.name}`);
    return page(res, err.type === 'StripeInvalidGrantError' ? 400 : 502, 'Stripe refused the connection');
  }
  if (typeof token.stripe_user_id !== 'string' || !/^acct_\w+$/.test(token.stripe_user_id)) {
    return page(res, 502, 'Stripe had a problem');
  }
  upsertAccount.run({
    id: token.stripe_user_id, scope: token.scope, livemode: token.livemode ? 1 : 0,
    token_type: token.token_type, access_token: token.access_token, refresh_token: token.refresh_token,
    stripe_publishable_key: token.stripe_publishable_key, now: Math.floor(Date.now() / 1000),
  });
  res.set('Cache-Control', 'no-store');
  res.redirect(303, '/connected?account=' + encodeURIComponent(token.stripe_user_id));
});

app.post('/webhooks', express.raw({ type: 'application/json', limit: '1mb' }), (req, res) => {
  let event;
  try {
    event = stripe.webhooks.constructEvent(req.body, req.headers['stripe-signature'], webhookSecret);
  } catch (err) {
    return res.status(400).json({ error: 'invalid_signature' });
  }
  const now = Math.floor(Date.now() / 1000);
  if (rememberEvent.run(event.id, now).changes === 0) return res.json({ received: true, duplicate: true });
  if (event.type === 'account.application.deauthorized' && typeof event.account === 'string') {
    disconnect.run(now, event.account);
  }
  res.json({ received: true });
});

const port = Number(process.env.PORT || 3000);
app.listen(port, '127.0.0.1', () => {
  console.error(`listening on http://127.0.0.1:${port}`);
});
