-- stripe_connect.store.sqlite — the store interface (see store/init.lua) in
-- an SQLite file through LuaSQL (`luasql.sqlite3`).  The embedded default.
--
-- * WAL journal, synchronous=NORMAL: a committed write survives the process
--   being killed (kill -9); only an OS crash/power loss may lose the last
--   commits.  busy_timeout lets several processes/workers share the file.
-- * The schema is created and migrated on open (table schema_version), inside
--   BEGIN IMMEDIATE so concurrent openers migrate once.
-- * LuaSQL's sqlite3 driver has no bind API, so every string goes through
--   conn:escape and is single-quoted, and every integer is formatted with %d.
--   Strings containing NUL bytes are refused (sqlite's %q stops at NUL):
--   put_account answers nil, message; other calls raise (ids are the caller's).
-- * claim_flow is one INSERT OR IGNORE: atomic across processes.
-- * Calls block the calling thread (LuaSQL is synchronous); each is short.
local luasql = require "luasql.sqlite3"
local cjson = require "cjson.safe"
local util = require "stripe_connect.util"

local M = {}

M.SCHEMA_VERSION = 1

local MIGRATIONS = {
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
}

-- The account columns; any other field of an account goes to `extra` (JSON).
local COLUMNS = {
  "id", "status", "scope", "livemode", "token_type", "access_token", "refresh_token",
  "stripe_publishable_key", "connected_at", "updated_at", "disconnected_at", "disconnect_reason",
}
local INT_COLUMNS = { connected_at = true, updated_at = true, disconnected_at = true }
local IS_COLUMN = {}
for _, c in ipairs(COLUMNS) do IS_COLUMN[c] = true end

local Sqlite = {}
Sqlite.__index = Sqlite

local function int(n)
  if n == nil then return "NULL" end
  return string.format("%d", math.floor(assert(tonumber(n), "integer expected")))
end

function Sqlite:q(s)
  if s == nil then return "NULL" end
  s = tostring(s)
  if s:find("\0", 1, true) then error("sqlite store: value contains a NUL byte", 3) end
  return "'" .. self.conn:escape(s) .. "'"
end

-- exec(sql) -> result | nil, message.  Closes cursors of row-returning statements.
function Sqlite:exec(sql)
  local res, err = self.conn:execute(sql)
  if res == nil then return nil, "sqlite: " .. tostring(err) end
  if type(res) == "userdata" then res:close(); return true end
  return res
end

-- rows(sql) -> array of rows (name -> value) | nil, message
function Sqlite:rows(sql)
  local cur, err = self.conn:execute(sql)
  if cur == nil then return nil, "sqlite: " .. tostring(err) end
  if type(cur) ~= "userdata" then return {} end
  local out = {}
  local row = cur:fetch({}, "a")
  while row do
    out[#out + 1] = row
    row = cur:fetch({}, "a")
  end
  cur:close()
  return out
end

local function tointeger(v)
  if v == nil then return nil end
  v = tonumber(v)
  return v and math.floor(v)
end

-- migrate() -> true | nil, message
function Sqlite:migrate()
  local ok, err = self:exec("BEGIN IMMEDIATE")
  if not ok then return nil, err end
  local function fail(e) self:exec("ROLLBACK"); return nil, e end
  ok, err = self:exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
  if not ok then return fail(err) end
  local rows, rerr = self:rows("SELECT version FROM schema_version")
  if not rows then return fail(rerr) end
  local have = rows[1] and tointeger(rows[1].version) or 0
  if not rows[1] then
    ok, err = self:exec("INSERT INTO schema_version (version) VALUES (0)")
    if not ok then return fail(err) end
  end
  if have > M.SCHEMA_VERSION then
    return fail(string.format("sqlite: the database has schema version %d, newer than this code (%d)",
      have, M.SCHEMA_VERSION))
  end
  for v = have + 1, M.SCHEMA_VERSION do
    for _, sql in ipairs(MIGRATIONS[v]) do
      ok, err = self:exec(sql)
      if not ok then return fail(err) end
    end
    ok, err = self:exec("UPDATE schema_version SET version = " .. int(v))
    if not ok then return fail(err) end
  end
  return self:exec("COMMIT")
end

-- open(path, opts) -> store | nil, message
-- opts.busy_timeout (milliseconds, default 5000).
function M.open(path, opts)
  opts = util.check_opts(opts, { busy_timeout = true }, "sqlite.open")
  assert(type(path) == "string" and path ~= "", "sqlite.open: path expected")
  local env = luasql.sqlite3()
  local conn, err = env:connect(path)
  if not conn then
    env:close()
    return nil, "sqlite: cannot open " .. path .. ": " .. tostring(err)
  end
  local self = setmetatable({ env = env, conn = conn, path = path, kind = "sqlite" }, Sqlite)
  local steps = {
    "PRAGMA busy_timeout = " .. int(opts.busy_timeout or 5000),
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
  }
  for _, sql in ipairs(steps) do
    local ok, e = self:exec(sql)
    if not ok then self:close(); return nil, e .. " (" .. path .. ")" end
  end
  local ok, e = self:migrate()
  if not ok then self:close(); return nil, e end
  return self
end

function Sqlite:close()
  if self.conn then self.conn:close(); self.conn = nil end
  if self.env then self.env:close(); self.env = nil end
  return true
end

function Sqlite:ping()
  local rows, err = self:rows("SELECT 1 AS one")
  if not rows then return nil, err end
  return true
end

-- ------------------------------------------------------------- accounts
function Sqlite:put_account(a)
  assert(type(a) == "table" and type(a.id) == "string" and a.id ~= "", "put_account: account with an id expected")
  local extra = {}
  for k, v in pairs(a) do
    if not IS_COLUMN[k] then extra[k] = v end
  end
  -- Values come from Stripe's answers: a NUL byte is bad data (nil, message),
  -- not misuse; escaping would cut the string there.
  for _, c in ipairs(COLUMNS) do
    if type(a[c]) == "string" and a[c]:find("\0", 1, true) then
      return nil, "sqlite: account field " .. c .. " contains a NUL byte"
    end
  end
  local values = {}
  for i, c in ipairs(COLUMNS) do
    local v = a[c]
    if c == "status" then v = v or "connected"
    elseif c == "updated_at" then v = v or os.time() end
    if c == "livemode" then
      values[i] = v == nil and "NULL" or (v and "1" or "0")
    elseif INT_COLUMNS[c] then
      values[i] = int(v)
    else
      values[i] = self:q(v)
    end
  end
  local cols = table.concat(COLUMNS, ", ") .. ", extra"
  values[#values + 1] = next(extra) and self:q(assert(cjson.encode(extra))) or "NULL"
  local ok, err = self:exec("INSERT OR REPLACE INTO accounts (" .. cols .. ") VALUES (" ..
    table.concat(values, ", ") .. ")")
  if not ok then return nil, err end
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
    if c == "livemode" then
      if v ~= nil then v = tonumber(v) == 1 end
    elseif INT_COLUMNS[c] then
      v = tointeger(v)
    end
    a[c] = v
  end
  return a
end

function Sqlite:get_account(id)
  local rows, err = self:rows("SELECT * FROM accounts WHERE id = " .. self:q(id))
  if not rows then return nil, err end
  return rows[1] and row_to_account(rows[1]) or nil
end

function Sqlite:list_accounts()
  local rows, err = self:rows("SELECT * FROM accounts ORDER BY connected_at DESC, id ASC")
  if not rows then return nil, err end
  for i, r in ipairs(rows) do rows[i] = row_to_account(r) end
  return rows
end

function Sqlite:account_counts()
  local rows, err = self:rows("SELECT status, COUNT(*) AS n FROM accounts GROUP BY status")
  if not rows then return nil, err end
  local out = {}
  for _, r in ipairs(rows) do out[r.status] = tointeger(r.n) end
  return out
end

function Sqlite:mark_disconnected(id, reason)
  local now = os.time()
  local n, err = self:exec("UPDATE accounts SET status = 'disconnected', access_token = NULL, " ..
    "refresh_token = NULL, stripe_publishable_key = NULL, disconnect_reason = " .. self:q(reason) ..
    ", disconnected_at = " .. int(now) .. ", updated_at = " .. int(now) .. " WHERE id = " .. self:q(id))
  if not n then return nil, err end
  return n > 0
end

function Sqlite:delete_account(id)
  local n, err = self:exec("DELETE FROM accounts WHERE id = " .. self:q(id))
  if not n then return nil, err end
  return n > 0
end

-- ---------------------------------------------------------------- flows
local function decode_outcome(s)
  if s == nil then return nil end
  return cjson.decode(s)
end

function Sqlite:claim_flow(nonce, expires_at)
  assert(type(nonce) == "string" and nonce ~= "", "claim_flow: nonce expected")
  local n, err = self:exec("INSERT OR IGNORE INTO flows (nonce, expires_at, claimed_at) VALUES (" ..
    self:q(nonce) .. ", " .. int(expires_at) .. ", " .. int(os.time()) .. ")")
  if not n then return nil, err end
  if n > 0 then return true end
  local f, ferr = self:get_flow(nonce)
  if ferr then return nil, ferr end
  return false, f and f.outcome
end

function Sqlite:record_outcome(nonce, outcome)
  local json = assert(cjson.encode(outcome))
  local n, err = self:exec("UPDATE flows SET outcome = " .. self:q(json) .. " WHERE nonce = " .. self:q(nonce))
  if not n then return nil, err end
  if n == 0 then return nil, "no such flow" end
  return true
end

function Sqlite:get_flow(nonce)
  local rows, err = self:rows("SELECT * FROM flows WHERE nonce = " .. self:q(nonce))
  if not rows then return nil, err end
  local r = rows[1]
  if not r then return nil end
  return { nonce = r.nonce, expires_at = tointeger(r.expires_at), claimed_at = tointeger(r.claimed_at),
    outcome = decode_outcome(r.outcome) }
end

function Sqlite:expire(now)
  now = now or os.time()
  local a, err = self:exec("DELETE FROM flows WHERE expires_at < " .. int(now))
  if not a then return nil, err end
  local b, err2 = self:exec("DELETE FROM events WHERE expires_at < " .. int(now))
  if not b then return nil, err2 end
  return math.floor(a + b)
end

-- --------------------------------------------------------------- events
function Sqlite:event_once(event_id, ttl_seconds)
  assert(type(event_id) == "string" and event_id ~= "", "event_once: event id expected")
  local now = os.time()
  local ok, err = self:exec("DELETE FROM events WHERE id = " .. self:q(event_id) .. " AND expires_at < " .. int(now))
  if not ok then return nil, err end
  local n, ierr = self:exec("INSERT OR IGNORE INTO events (id, expires_at) VALUES (" .. self:q(event_id) ..
    ", " .. int(now + (ttl_seconds or 72 * 3600)) .. ")")
  if not n then return nil, ierr end
  return n > 0
end

function Sqlite:forget_event(event_id)
  local ok, err = self:exec("DELETE FROM events WHERE id = " .. self:q(event_id))
  if not ok then return nil, err end
  return true
end

-- ------------------------------------------------------------- counters
function Sqlite:incr(name, n)
  local ok, err = self:exec("INSERT INTO counters (name, value) VALUES (" .. self:q(name) .. ", " ..
    int(n or 1) .. ") ON CONFLICT (name) DO UPDATE SET value = value + excluded.value")
  if not ok then return nil, err end
  return true
end

function Sqlite:counters()
  local rows, err = self:rows("SELECT name, value FROM counters")
  if not rows then return nil, err end
  local out = {}
  for _, r in ipairs(rows) do out[r.name] = tointeger(r.value) end
  return out
end

return M
