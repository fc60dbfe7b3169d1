// scripts/bench/peer-express/db.js — the peer's SQLite schema (better-sqlite3),
// shared by server.js and seed.js.
'use strict';

const MAX_AGE_MS = 30 * 60 * 1000; // a state is valid for 30 minutes, as ours (STATE_TTL 1800)

function open(Database, file) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.exec(`
    CREATE TABLE IF NOT EXISTS oauth_states (
      state      TEXT PRIMARY KEY,
      binding    TEXT NOT NULL,
      expires_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS accounts (
      id                     TEXT PRIMARY KEY,
      status                 TEXT NOT NULL,
      scope                  TEXT,
      livemode               INTEGER NOT NULL,
      token_type             TEXT,
      access_token           TEXT,
      refresh_token          TEXT,
      stripe_publishable_key TEXT,
      connected_at           INTEGER NOT NULL,
      updated_at             INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS webhook_events (
      id          TEXT PRIMARY KEY,
      received_at INTEGER NOT NULL
    );
  `);
  return db;
}

module.exports = { open, MAX_AGE_MS };
