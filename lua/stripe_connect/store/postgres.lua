-- stripe_connect.store.postgres — the store interface (see store/init.lua) in
-- PostgreSQL, through the core's libpq binding (`core.pg_connect`).  For
-- several hosts (or OpenResty boxes) behind a load balancer sharing one
-- database.
--
-- * A pool of connections per lua_State (under `serve`, per worker: each
--   worker opens its own store), opened as needed up to opts.pool (default
--   16); a call waits for a free one when all are busy.  Under `serve` a
--   query yields the request's coroutine and the worker's event loop waits
--   for the socket (libpq's asynchronous API, host/pgwait.c): a slow query
--   holds only its own request.  Under `run` and plain Lua the same calls
--   block.
-- * After the server restarts, a pooled connection it dropped is replaced:
--   the call runs again once on a new connection.  While the server is down
--   calls answer nil, message (the app answers 503); nothing needs a restart
--   once it is back.
-- * Every value is bound ($1, $2, …; no SQL is built from strings).  String
--   columns are bytea, so values are byte-exact, NUL bytes included, as in
--   the SQLite store.
-- * The schema is created and migrated on open (table schema_version) in
--   one transaction holding pg_advisory_xact_lock: hosts opening at once
--   migrate once.
-- * claim_flow, event_once and claim_event are single INSERT … ON CONFLICT
--   statements on unique keys: atomic across every host sharing the database.
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local util = require "stripe_connect.util"
local shared = require("stripe_connect.store.sqlite").shared

local COLUMNS, account_params, row_to_account = shared.COLUMNS, shared.account_params, shared.row_to_account
local row_to_flow = shared.row_to_flow
local int, seconds, id_arg, classify_claim = shared.int, shared.seconds, shared.id_arg, shared.classify_claim
local unpack = table.unpack or unpack

local M = {}

M.SCHEMA_VERSION = 2
M.LOCK_KEY = 7272001 -- pg_advisory_xact_lock key of the migration

M.MIGRATIONS = {
  [1] = {
    [[CREATE TABLE accounts (
        id bytea PRIMARY KEY, status bytea NOT NULL, scope bytea, livemode smallint,
        token_type bytea, access_token bytea, refresh_token bytea, stripe_publishable_key bytea,
        connected_at bigint, updated_at bigint, disconnected_at bigint,
        disconnect_reason bytea, owner bytea, extra bytea)]],
    [[CREATE INDEX accounts_owner ON accounts (owner)]],
    [[CREATE TABLE flows (
        nonce bytea PRIMARY KEY, expires_at bigint NOT NULL, claimed_at bigint NOT NULL,
        outcome bytea)]],
    [[CREATE INDEX flows_expires_at ON flows (expires_at)]],
    [[CREATE TABLE events (id bytea PRIMARY KEY, expires_at bigint NOT NULL)]],
    [[CREATE INDEX events_expires_at ON events (expires_at)]],
  },
  -- Whether an event id is processed (1) or only claimed for a lease (0,
  -- claim_event); every row before this version is a processed one.
  [2] = { [[ALTER TABLE events ADD COLUMN done smallint NOT NULL DEFAULT 1]] },
}

local function placeholders(from, n)
  local t = {}
  for i = 1, n do t[i] = "$" .. (from + i - 1) end
  return table.concat(t, ", ")
end

local UPDATES = {}
for i = 2, #COLUMNS do UPDATES[#UPDATES + 1] = COLUMNS[i] .. " = EXCLUDED." .. COLUMNS[i] end
UPDATES[#UPDATES + 1] = "extra = EXCLUDED.extra"
local PUT_ACCOUNT = "INSERT INTO accounts (" .. table.concat(COLUMNS, ", ") .. ", extra) VALUES (" ..
  placeholders(1, #COLUMNS + 1) .. ") ON CONFLICT (id) DO UPDATE SET " .. table.concat(UPDATES, ", ")
local MARK_DISCONNECTED = "UPDATE accounts SET status = $1, access_token = NULL, " ..
  "refresh_token = NULL, stripe_publishable_key = NULL, disconnect_reason = $2, " ..
  "disconnected_at = $3, updated_at = $3 WHERE id = $4"
local ORDER = " ORDER BY connected_at DESC NULLS LAST, id ASC"
local CLAIM_FLOW = "INSERT INTO flows (nonce, expires_at, claimed_at) VALUES ($1, $2, $3) " ..
  "ON CONFLICT (nonce) DO NOTHING"
-- A new id is inserted, an expired one (processed or only claimed) taken
-- over, a live one left alone (changes = 0: a duplicate).
local EVENT_ONCE = "INSERT INTO events (id, expires_at, done) VALUES ($1, $2, 1) ON CONFLICT (id) " ..
  "DO UPDATE SET expires_at = EXCLUDED.expires_at, done = 1 WHERE events.expires_at < $3"
-- The same for a claim held for a lease (done = 0; a row back: claimed) ...
local CLAIM_EVENT = "INSERT INTO events (id, expires_at, done) VALUES ($1, $2, 0) ON CONFLICT (id) " ..
  "DO UPDATE SET expires_at = EXCLUDED.expires_at, done = 0 WHERE events.expires_at < $3 RETURNING done"
-- ... and its end: processed, remembered for the ttl (whatever became of the row).
local FINISH_EVENT = "INSERT INTO events (id, expires_at, done) VALUES ($1, $2, 1) ON CONFLICT (id) " ..
  "DO UPDATE SET expires_at = EXCLUDED.expires_at, done = 1"

local Pg = {}
Pg.__index = Pg

-- The migration, on one connection: one transaction under the advisory lock.
local function migrate(c)
  local function q(sql, ...)
    local r, err = c:query(sql, ...)
    if not r then error(err, 0) end
    return r
  end
  local ok, err = pcall(function()
    q("BEGIN")
    q("SELECT pg_advisory_xact_lock($1::bigint)", M.LOCK_KEY)
    q("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
    local v = q("SELECT max(version) AS v FROM schema_version")[1].v or 0
    if v > M.SCHEMA_VERSION then
      error(("postgres: the database's schema is version %d, newer than this code's %d"):format(
        v, M.SCHEMA_VERSION), 0)
    end
    for step = v + 1, M.SCHEMA_VERSION do
      for _, sql in ipairs(M.MIGRATIONS[step]) do q(sql) end
    end
    if v < M.SCHEMA_VERSION then
      q("DELETE FROM schema_version")
      q("INSERT INTO schema_version (version) VALUES ($1)", M.SCHEMA_VERSION)
    end
    q("COMMIT")
  end)
  if not ok then c:query("ROLLBACK"); return nil, err end
  return true
end

-- open(url, opts) -> store | nil, message
-- url: a libpq connection URI (postgres://user:pass@host:port/db?…) or
-- key=value string; opts.pool: connections per lua_State (default 16).
function M.open(url, opts)
  opts = util.check_opts(opts, { pool = true }, "postgres.open")
  if type(url) ~= "string" or url == "" then error("postgres.open: url expected", 2) end
  local pool = opts.pool or 16
  if type(pool) ~= "number" or pool < 1 or pool % 1 ~= 0 then
    error("postgres.open: pool must be a positive integer", 2)
  end
  local c, err = core.pg_connect(url)
  if not c then return nil, err end
  local ok, merr = migrate(c)
  if not ok then c:close(); return nil, merr end
  return setmetatable({ url = url, idle = { c }, open = 1, max = pool, kind = "postgres" }, Pg)
end

local WAIT_STEP, WAIT_MAX = 0.005, 10 -- seconds: waiting for a pooled connection

-- acquire() -> connection, reused | nil, message
function Pg:acquire()
  local waited = 0
  while true do
    if not self.idle then return nil, "postgres: the store is closed" end
    local c = table.remove(self.idle)
    if c then return c, true end
    if self.open < self.max then
      self.open = self.open + 1
      local nc, err = core.pg_connect(self.url)
      if not nc then self.open = self.open - 1; return nil, err end
      return nc, false
    end
    if waited >= WAIT_MAX then return nil, "postgres: every pooled connection is busy" end
    core.sleep(WAIT_STEP)
    waited = waited + WAIT_STEP
  end
end

function Pg:release(c)
  if self.idle and c:ok() then
    self.idle[#self.idle + 1] = c
  else
    c:close()
    self.open = self.open - 1
  end
end

-- Drop every idle connection (the server dropped them: it restarted).
function Pg:drain()
  for i = #self.idle, 1, -1 do
    self.idle[i]:close()
    self.idle[i] = nil
    self.open = self.open - 1
  end
end

-- query(c, sql, …) on a pooled connection: one that raises (misuse, or the
-- request's instruction budget) goes back to the pool before the error goes on.
function Pg:query(c, sql, ...)
  local ok, r, err, broken = pcall(c.query, c, sql, ...)
  if not ok then
    self:release(c)
    error(r, 0)
  end
  return r, err, broken
end

-- q(sql, value…) -> rows | nil, message: one statement on a pooled
-- connection; a reused one the server dropped is replaced once.
function Pg:q(sql, ...)
  local c, reused = self:acquire()
  if not c then return nil, reused end
  local r, err, broken = self:query(c, sql, ...)
  if not r and broken and reused then
    self:release(c)
    self:drain()
    c, reused = self:acquire()
    if not c then return nil, reused end
    r, err = self:query(c, sql, ...)
  end
  self:release(c)
  return r, err
end

function Pg:close()
  if self.idle then
    self:drain()
    self.idle = nil
  end
  return true
end

function Pg:ping()
  local r, err = self:q("SELECT 1 AS one")
  if not r then return nil, err end
  return true
end

-- ------------------------------------------------------------- accounts
function Pg:put_account(a)
  local params, perr = account_params(a)
  if not params then return nil, "postgres: " .. perr end
  local r, err = self:q(PUT_ACCOUNT, unpack(params, 1, #COLUMNS + 1))
  if not r then return nil, err end
  return true
end

local function accounts(r, err)
  if not r then return nil, err end
  local out = {}
  for i, row in ipairs(r) do out[i] = row_to_account(row) end
  return out
end

function Pg:get_account(id)
  local r, err = self:q("SELECT * FROM accounts WHERE id = $1", id_arg(id, "get_account"))
  if not r then return nil, err end
  return r[1] and row_to_account(r[1]) or nil
end

function Pg:list_accounts()
  return accounts(self:q("SELECT * FROM accounts" .. ORDER))
end

function Pg:accounts_of(owner)
  return accounts(self:q("SELECT * FROM accounts WHERE owner = $1" .. ORDER, id_arg(owner, "accounts_of")))
end

function Pg:account_counts()
  local r, err = self:q("SELECT status, COUNT(*) AS n FROM accounts GROUP BY status")
  if not r then return nil, err end
  local out = {}
  for _, row in ipairs(r) do out[row.status] = row.n end
  return out
end

function Pg:mark_disconnected(id, reason)
  id_arg(id, "mark_disconnected")
  local r, err = self:q(MARK_DISCONNECTED, "disconnected", reason ~= nil and tostring(reason) or nil,
    os.time(), id)
  if not r then return nil, err end
  return r.changes > 0
end

function Pg:delete_account(id)
  local r, err = self:q("DELETE FROM accounts WHERE id = $1", id_arg(id, "delete_account"))
  if not r then return nil, err end
  return r.changes > 0
end

-- ---------------------------------------------------------------- flows
function Pg:claim_flow(nonce, expires_at)
  id_arg(nonce, "claim_flow")
  local r, err = self:q(CLAIM_FLOW, nonce, int(expires_at, "expires_at"), os.time())
  if not r then return nil, err end
  if r.changes > 0 then return true end
  r, err = self:q("SELECT outcome FROM flows WHERE nonce = $1", nonce)
  if not r then return nil, err end
  local row = r[1]
  return false, row and row.outcome and cjson.decode(row.outcome) or nil
end

function Pg:record_outcome(nonce, outcome)
  local json = assert(cjson.encode(outcome))
  local r, err = self:q("UPDATE flows SET outcome = $1 WHERE nonce = $2", json, id_arg(nonce, "record_outcome"))
  if not r then return nil, err end
  if r.changes == 0 then return nil, "no such flow" end
  return true
end

function Pg:get_flow(nonce)
  local r, err = self:q("SELECT * FROM flows WHERE nonce = $1", id_arg(nonce, "get_flow"))
  if not r then return nil, err end
  local f = r[1]
  if not f then return nil end
  return row_to_flow(f)
end

function Pg:expire(now)
  now = int(now or os.time(), "now")
  local r1, err = self:q("DELETE FROM flows WHERE expires_at < $1", now)
  if not r1 then return nil, err end
  local r2, err2 = self:q("DELETE FROM events WHERE expires_at < $1", now)
  if not r2 then return nil, err2 end
  return r1.changes + r2.changes
end

-- --------------------------------------------------------------- events
function Pg:event_once(event_id, ttl_seconds)
  id_arg(event_id, "event_once")
  local now = os.time()
  local r, err = self:q(EVENT_ONCE, event_id, now + int(ttl_seconds or 72 * 3600, "ttl_seconds"), now)
  if not r then return nil, err end
  return r.changes > 0
end

-- claim_event(id, lease) -> "first" | "processing" | "done" | nil, message:
-- the claim is the one atomic statement (a row back: claimed); the read
-- after it only tells a live claim from a processed id (shared.classify_claim).
function Pg:claim_event(event_id, lease_seconds)
  id_arg(event_id, "claim_event")
  local lease = seconds(lease_seconds, "lease_seconds")
  return classify_claim(function()
    local now = os.time()
    local r, err = self:q(CLAIM_EVENT, event_id, now + lease, now)
    if not r then return nil, err end
    return r[1] ~= nil
  end, function()
    local r, err = self:q("SELECT done FROM events WHERE id = $1", event_id)
    if not r then return nil, err end
    return r[1] and r[1].done
  end)
end

function Pg:finish_event(event_id, ttl_seconds)
  id_arg(event_id, "finish_event")
  local r, err = self:q(FINISH_EVENT, event_id, os.time() + seconds(ttl_seconds, "ttl_seconds"))
  if not r then return nil, err end
  return true
end

function Pg:forget_event(event_id)
  local r, err = self:q("DELETE FROM events WHERE id = $1", id_arg(event_id, "forget_event"))
  if not r then return nil, err end
  return true
end

return M
