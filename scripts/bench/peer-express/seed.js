// scripts/bench/peer-express/seed.js — pre-issue N states for the bench, as
// N visits to the peer's /connect would: each a fresh browser (binding cookie)
// with one state stored for it.  Writes "STATE BINDING" lines for wrk.
//
//   node seed.js DB_FILE N OUT_FILE
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const modules = process.env.PEER_NODE_MODULES || path.resolve(__dirname, '../../../build/bench/peer-node/node_modules');
const Database = require(path.join(modules, 'better-sqlite3'));
const { open, MAX_AGE_MS } = require('./db');

const [file, count, out] = process.argv.slice(2);
const n = Number(count);
if (!file || !out || !(n > 0)) {
  console.error('usage: node seed.js DB_FILE N OUT_FILE');
  process.exit(2);
}
const db = open(Database, file);
const insert = db.prepare('INSERT INTO oauth_states (state, binding, expires_at) VALUES (?, ?, ?)');
const expires = Date.now() + MAX_AGE_MS;
const lines = [];
db.transaction(() => {
  for (let i = 0; i < n; i++) {
    const state = crypto.randomBytes(16).toString('base64url');
    const binding = crypto.randomBytes(24).toString('base64url');
    insert.run(state, binding, expires);
    lines.push(state + ' ' + binding);
  }
})();
db.close();
fs.writeFileSync(out, lines.join('\n') + '\n');
