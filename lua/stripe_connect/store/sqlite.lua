-- stripe_connect.store.sqlite — the store interface (see store/init.lua) in
-- SQLite, through the core's C binding (`core.sqlite_open`, libsqlite3).
-- The embedded default.
--
-- * One connection and one database thread per file per process, shared by
--   every worker of `serve`: the thread commits whatever jobs are waiting in
--   one transaction (group commit) and answers each caller after its own
--   commit.  Under `serve` a call yields the request's coroutine until then,
--   so the event loop never waits on SQLite's locks or the disk; under `run`
--   and plain Lua the same calls block.
-- * Every value is bound to a prepared statement (no SQL is built from
--   strings); strings are stored byte-exact, NUL bytes included.
-- * WAL journal, synchronous=NORMAL (opts.synchronous = "full" to sync the
--   WAL on every commit): a write that was answered survives the process
--   being killed (kill -9); only an OS crash or power loss may lose the last
--   commits at NORMAL.  busy_timeout (default 5 s) is how long the database
--   thread waits for another process's lock.
-- * The schema is created and migrated on open (table schema_version),
--   inside BEGIN IMMEDIATE, so processes opening at once migrate once.
-- * claim_flow, event_once and claim_event's claim are single jobs: atomic
--   across every worker and process sharing the file.
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local util = require "stripe_connect.util"

local M = {}

M.SCHEMA_VERSION = 4

M.MIGRATIONS = {
  [1] = {
    [[CREATE TABLE accounts (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, scope TEXT, livemode INTEGER,
        token_type TEXT, access_token TEXT, refresh_token TEXT, stripe_publishable_key TEXT,
        connected_at INTEGER, updated_at INTEGER, disconnected_at INTEGER,
        disconnect_reason TEXT, extra TEXT)]],
    [[CREATE TABLE flows (
        nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, claimed_at INTEGER NOT NULL,
        outcome TEXT)]],
    [[CREATE INDEX flows_expires_at ON flows (expires_at)]],
    [[CREATE TABLE events (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)]],
    [[CREATE INDEX events_expires_at ON events (expires_at)]],
    [[CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)]],
  },
  -- Counters live in process memory now (stripe_connect.metrics).
  [2] = { [[DROP TABLE IF EXISTS counters]] },
  -- Which of the platform's users owns the account (policy hook `owner`).
  [3] = {
    [[ALTER TABLE accounts ADD COLUMN owner TEXT]],
    [[CREATE INDEX accounts_owner ON accounts (owner)]],
  },
  -- Whether an event id is processed (1) or only claimed for a lease (0,
  -- claim_event); every row before this version is a processed one.
  [4] = { [[ALTER TABLE events ADD COLUMN done INTEGER NOT NULL DEFAULT 1]] },
}

-- The account columns; any other field of an account goes to `extra` (JSON).
local COLUMNS = {
  "id", "status", "scope", "livemode", "token_type", "access_token", "refresh_token",
  "stripe_publishable_key", "connected_at", "updated_at", "disconnected_at", "disconnect_reason", "owner",
}
local INT_COLUMNS = { connected_at = true, updated_at = true, disconnected_at = true }
local IS_COLUMN = {}
for _, c in ipairs(COLUMNS) do IS_COLUMN[c] = true end

local PUT_ACCOUNT = "INSERT OR REPLACE INTO accounts (" .. table.concat(COLUMNS, ", ") ..
  ", extra) VALUES (" .. ("?, "):rep(#COLUMNS) .. "?)"
local MARK_DISCONNECTED = "UPDATE accounts SET status = 'disconnected', access_token = NULL, " ..
  "refresh_token = NULL, stripe_publishable_key = NULL, disconnect_reason = ?, " ..
  "disconnected_at = ?, updated_at = ? WHERE id = ?"

local Sqlite = {}
Sqlite.__index = Sqlite

local floor = math.floor

local function int(n, what)
  if n == nil then return nil end
  local v = tonumber(n)
  if not v or v ~= v or v == math.huge or v == -math.huge then
    error("store: " .. what .. " must be a number", 3)
  end
  return floor(v)
end

-- seconds(n, what): int, but nil is refused too.
local function seconds(n, what)
  if n == nil then error("store: " .. what .. " must be a number", 3) end
  return int(n, what)
end

local function id_arg(id, what)
  if type(id) ~= "string" or id == "" then error(what .. ": a non-empty string id expected", 3) end
  return id
end

-- run(stmts) -> results | nil, message: one job (all statements or none).
function Sqlite:run(stmts)
  return self.db:exec(stmts)
end

-- open(path, opts) -> store | nil, message
-- opts: busy_timeout (ms, default 5000), synchronous ("normal" | "full"),
-- name (with path ":memory:": an in-memory database shared by name).
function M.open(path, opts)
  opts = util.check_opts(opts, { busy_timeout = true, synchronous = true, name = true }, "sqlite.open")
  if type(path) ~= "string" or path == "" then error("sqlite.open: path expected", 2) end
  local db, err = core.sqlite_open(path, { busy_timeout = opts.busy_timeout,
    synchronous = opts.synchronous, name = opts.name })
  if not db then return nil, err .. " (" .. path .. ")" end
  local version, merr = db:migrate(M.SCHEMA_VERSION, M.MIGRATIONS)
  if not version then db:close(); return nil, merr end
  return setmetatable({ db = db, path = path, kind = "sqlite" }, Sqlite)
end

function Sqlite:close()
  if self.db then self.db:close(); self.db = nil end
  return true
end

function Sqlite:ping()
  local r, err = self:run{ { "SELECT 1 AS one" } }
  if not r then return nil, err end
  return true
end

-- ------------------------------------------------------------- accounts
-- account_params(a) -> the values of COLUMNS (then extra, JSON or nil) in
-- order | nil, message.  Shared with the PostgreSQL store.
local function account_params(a)
  assert(type(a) == "table" and type(a.id) == "string" and a.id ~= "", "put_account: account with an id expected")
  local extra = {}
  for k, v in pairs(a) do
    if not IS_COLUMN[k] then extra[k] = v end
  end
  local params = {}
  for i, c in ipairs(COLUMNS) do
    local v = a[c]
    if c == "status" then v = v or "connected"
    elseif c == "updated_at" then v = v or os.time() end
    if c == "livemode" then
      if v ~= nil then v = v and 1 or 0 end
    elseif INT_COLUMNS[c] then
      v = int(v, c)
    elseif v ~= nil then
      v = tostring(v)
    end
    params[i] = v
  end
  if next(extra) then
    local json, jerr = cjson.encode(extra)
    if not json then return nil, "account fields cannot be stored: " .. tostring(jerr) end
    params[#COLUMNS + 1] = json
  end
  return params
end

function Sqlite:put_account(a)
  local params, perr = account_params(a)
  if not params then return nil, "sqlite: " .. perr end
  local r, err = self:run{ { PUT_ACCOUNT, (table.unpack or unpack)(params, 1, #COLUMNS + 1) } }
  if not r then return nil, err end
  return true
end

local function row_to_account(r)
  local a = {}
  if r.extra then
    local extra = cjson.decode(r.extra)
    if type(extra) == "table" then
      for k, v in pairs(extra) do a[k] = v end
    end
  end
  for _, c in ipairs(COLUMNS) do
    local v = r[c]
    if c == "livemode" and v ~= nil then v = v == 1 end
    a[c] = v
  end
  return a
end

-- row_to_flow(f) -> the store interface's flow table from a flows row.
local function row_to_flow(f)
  return { nonce = f.nonce, expires_at = f.expires_at, claimed_at = f.claimed_at,
    outcome = f.outcome and cjson.decode(f.outcome) or nil }
end

-- classify_claim(claim, read_done) -> "first" | "processing" | "done" |
-- nil, message: what claim_event answers, for both stores.  claim() -> true
-- when its one atomic statement took the row (new, or expired), false when
-- it left it alone | nil, message; read_done() -> the row's done (1 or 0),
-- nil when the row is gone | nil, message.  A row gone between the two (its
-- claimant gave it back, or the sweep took it) is claimed again, once.
local function classify_claim(claim, read_done)
  for _ = 1, 2 do
    local took, err = claim()
    if took == nil then return nil, err end
    if took then return "first" end
    local done, rerr = read_done()
    if rerr ~= nil then return nil, rerr end
    if done ~= nil then return done == 1 and "done" or "processing" end
  end
  return "processing"
end

-- What the PostgreSQL store shares with this one: the account's columns and
-- their conversions, the flow row's, the argument checks, claim_event's
-- answer.
M.shared = { COLUMNS = COLUMNS, account_params = account_params, row_to_account = row_to_account,
  row_to_flow = row_to_flow, int = int, seconds = seconds, id_arg = id_arg, classify_claim = classify_claim }

function Sqlite:get_account(id)
  local r, err = self:run{ { "SELECT * FROM accounts WHERE id = ?", id_arg(id, "get_account") } }
  if not r then return nil, err end
  return r[1][1] and row_to_account(r[1][1]) or nil
end

function Sqlite:list_accounts()
  local r, err = self:run{ { "SELECT * FROM accounts ORDER BY connected_at DESC, id ASC" } }
  if not r then return nil, err end
  local out = {}
  for i, row in ipairs(r[1]) do out[i] = row_to_account(row) end
  return out
end

-- accounts_of(owner) -> the accounts of one of the platform's users, newest first.
function Sqlite:accounts_of(owner)
  local r, err = self:run{ { "SELECT * FROM accounts WHERE owner = ? ORDER BY connected_at DESC, id ASC",
    id_arg(owner, "accounts_of") } }
  if not r then return nil, err end
  local out = {}
  for i, row in ipairs(r[1]) do out[i] = row_to_account(row) end
  return out
end

function Sqlite:account_counts()
  local r, err = self:run{ { "SELECT status, COUNT(*) AS n FROM accounts GROUP BY status" } }
  if not r then return nil, err end
  local out = {}
  for _, row in ipairs(r[1]) do out[row.status] = row.n end
  return out
end

function Sqlite:mark_disconnected(id, reason)
  local now = os.time()
  local r, err = self:run{ { MARK_DISCONNECTED, reason, now, now, id_arg(id, "mark_disconnected") } }
  if not r then return nil, err end
  return r[1].changes > 0
end

-- swap_tokens(id, old, new) -> true | false (the row changed meanwhile) | nil, err:
-- sets access_token and refresh_token to new.* only while they still hold
-- old.* (NULL-safe), so a rotation never overwrites a concurrent update
-- (a refresh, a disconnect).
function Sqlite:swap_tokens(id, old, new)
  local r, err = self:run{ { "UPDATE accounts SET access_token = ?, refresh_token = ? WHERE id = ? " ..
    "AND access_token IS ? AND refresh_token IS ?", new.access_token, new.refresh_token,
    id_arg(id, "swap_tokens"), old.access_token, old.refresh_token } }
  if not r then return nil, err end
  return r[1].changes > 0
end

function Sqlite:delete_account(id)
  local r, err = self:run{ { "DELETE FROM accounts WHERE id = ?", id_arg(id, "delete_account") } }
  if not r then return nil, err end
  return r[1].changes > 0
end

-- ---------------------------------------------------------------- flows
function Sqlite:claim_flow(nonce, expires_at)
  id_arg(nonce, "claim_flow")
  local r, err = self:run{
    { "INSERT OR IGNORE INTO flows (nonce, expires_at, claimed_at) VALUES (?, ?, ?)",
      nonce, int(expires_at, "expires_at"), os.time() },
    { "SELECT outcome FROM flows WHERE nonce = ?", nonce },
  }
  if not r then return nil, err end
  if r[1].changes > 0 then return true end
  local row = r[2][1]
  return false, row and row.outcome and cjson.decode(row.outcome) or nil
end

function Sqlite:record_outcome(nonce, outcome)
  local json = assert(cjson.encode(outcome))
  local r, err = self:run{ { "UPDATE flows SET outcome = ? WHERE nonce = ?", json, id_arg(nonce, "record_outcome") } }
  if not r then return nil, err end
  if r[1].changes == 0 then return nil, "no such flow" end
  return true
end

function Sqlite:get_flow(nonce)
  local r, err = self:run{ { "SELECT * FROM flows WHERE nonce = ?", id_arg(nonce, "get_flow") } }
  if not r then return nil, err end
  local f = r[1][1]
  if not f then return nil end
  return row_to_flow(f)
end

function Sqlite:expire(now)
  now = int(now or os.time(), "now")
  local r, err = self:run{
    { "DELETE FROM flows WHERE expires_at < ?", now },
    { "DELETE FROM events WHERE expires_at < ?", now },
  }
  if not r then return nil, err end
  return r[1].changes + r[2].changes
end

-- --------------------------------------------------------------- events
-- One statement: a new id is inserted, an expired one (processed or only
-- claimed) is taken over, a live one is left alone (changes = 0: a duplicate).
local EVENT_ONCE = "INSERT INTO events (id, expires_at, done) VALUES (?, ?, 1) ON CONFLICT (id) " ..
  "DO UPDATE SET expires_at = excluded.expires_at, done = 1 WHERE events.expires_at < ?"
-- The same for a claim held for a lease (done = 0) ...
local CLAIM_EVENT = "INSERT INTO events (id, expires_at, done) VALUES (?, ?, 0) ON CONFLICT (id) " ..
  "DO UPDATE SET expires_at = excluded.expires_at, done = 0 WHERE events.expires_at < ?"
-- ... and its end: processed, remembered for the ttl (whatever became of the row).
local FINISH_EVENT = "INSERT INTO events (id, expires_at, done) VALUES (?, ?, 1) ON CONFLICT (id) " ..
  "DO UPDATE SET expires_at = excluded.expires_at, done = 1"

function Sqlite:event_once(event_id, ttl_seconds)
  id_arg(event_id, "event_once")
  local now = os.time()
  local r, err = self:run{ { EVENT_ONCE, event_id, now + int(ttl_seconds or 72 * 3600, "ttl_seconds"), now } }
  if not r then return nil, err end
  return r[1].changes > 0
end

function Sqlite:claim_event(event_id, lease_seconds)
  id_arg(event_id, "claim_event")
  local lease = seconds(lease_seconds, "lease_seconds")
  return classify_claim(function()
    local now = os.time()
    local r, err = self:run{ { CLAIM_EVENT, event_id, now + lease, now } }
    if not r then return nil, err end
    return r[1].changes > 0
  end, function()
    local r, err = self:run{ { "SELECT done FROM events WHERE id = ?", event_id } }
    if not r then return nil, err end
    return r[1][1] and r[1][1].done
  end)
end

function Sqlite:finish_event(event_id, ttl_seconds)
  id_arg(event_id, "finish_event")
  local r, err = self:run{ { FINISH_EVENT, event_id, os.time() + seconds(ttl_seconds, "ttl_seconds") } }
  if not r then return nil, err end
  return true
end

function Sqlite:forget_event(event_id)
  local r, err = self:run{ { "DELETE FROM events WHERE id = ?", id_arg(event_id, "forget_event") } }
  if not r then return nil, err end
  return true
end

return M
