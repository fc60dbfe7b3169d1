-- The store interface: the same rows run against every implementation
-- (memory, SQLite in a fresh temp file, and PostgreSQL in a fresh database
-- of a throwaway server, support.postgres).
local lu = require "luaunit"
local store = require "stripe_connect.store"
local files = require "support.files"
local postgres = require "support.postgres"

local pg -- the server, started by the first PostgreSQL row, stopped by teardown
local function pg_server()
  if not pg then pg = postgres.start() end
  return pg
end

local tmpdir = files.tmpdir

local IMPLEMENTATIONS = {
  { "memory", function() return assert(store.open("memory:")) end, function() end },
  { "sqlite", function()
      local dir = tmpdir()
      local s = assert(store.open("sqlite:" .. dir .. "/t.db"))
      s._dir = dir
      return s
    end,
    function(s) s:close(); files.rmdir(s._dir) end },
  { "postgres", function() return assert(store.open(pg_server():fresh_url())) end,
    function(s) s:close() end },
}

local function each(fn)
  for _, impl in ipairs(IMPLEMENTATIONS) do
    local s = impl[2]()
    local ok, err = pcall(fn, s, impl[1])
    impl[3](s)
    if not ok then error(impl[1] .. ": " .. tostring(err), 0) end
  end
end

local function account(id, extra)
  local a = { id = id, scope = "read_write", livemode = false, token_type = "bearer",
    access_token = "sk_test_access", refresh_token = "rt_x", stripe_publishable_key = "pk_test_x",
    connected_at = 1700000000, status = "connected" }
  for k, v in pairs(extra or {}) do a[k] = v end
  return a
end

local TestStore = {}

function TestStore.teardownClass()
  if pg then pg:stop(); pg = nil end
end

function TestStore.test_open_urls()
  local rows = {
    { "memory:", true }, { "memory", true }, { "postgres://x", false }, { "", false },
  }
  for _, row in ipairs(rows) do
    local s, err = store.open(row[1])
    if row[2] then lu.assertNotNil(s, row[1]) else lu.assertNil(s, row[1]); lu.assertIsString(err) end
  end
  lu.assertErrorMsgContains("unknown option", store.open, "memory:", { nope = 1 })
  local s, err = store.open("sqlite:/nonexistent-dir/x/y.db")
  lu.assertNil(s)
  lu.assertStrContains(err, "sqlite")
end

function TestStore.test_check()
  lu.assertNotNil(store.check(store.open("memory:")))
  local ok, err = store.check({ put_account = function() end })
  lu.assertNil(ok)
  lu.assertStrContains(err, "claim_flow")
end

function TestStore.test_accounts_roundtrip()
  each(function(s, name)
    lu.assertNil(s:get_account("acct_1"), name)
    lu.assertTrue(s:put_account(account("acct_1", { note = "it's \"quoted\"; DROP TABLE accounts; --" })))
    local a = s:get_account("acct_1")
    lu.assertEquals(a.id, "acct_1")
    lu.assertEquals(a.scope, "read_write")
    lu.assertEquals(a.livemode, false)
    lu.assertEquals(a.refresh_token, "rt_x")
    lu.assertEquals(a.connected_at, 1700000000)
    lu.assertEquals(a.status, "connected")
    lu.assertEquals(a.note, "it's \"quoted\"; DROP TABLE accounts; --", name .. ": extra fields kept")
    lu.assertIsNumber(a.updated_at)
    -- mutation of the returned copy does not change the store
    a.scope = "changed"
    lu.assertEquals(s:get_account("acct_1").scope, "read_write")
    -- replace
    lu.assertTrue(s:put_account(account("acct_1", { livemode = true, scope = "read_only" })))
    lu.assertEquals(s:get_account("acct_1").livemode, true)
    lu.assertEquals(s:get_account("acct_1").scope, "read_only")
  end)
end

function TestStore.test_hostile_ids_are_data()
  each(function(s, name)
    local ids = { "acct_'; DROP TABLE accounts; --", "acct_\"x\"", "acct_%_*", "acct_ünï" }
    for _, id in ipairs(ids) do
      lu.assertTrue(s:put_account(account(id)), name .. " " .. id)
    end
    for _, id in ipairs(ids) do
      lu.assertEquals(s:get_account(id).id, id, name)
    end
    lu.assertEquals(#s:list_accounts(), #ids, name)
    s:mark_disconnected(ids[1], "test")
    lu.assertEquals(s:account_counts(), { connected = #ids - 1, disconnected = 1 }, name)
    lu.assertNil(s:get_account("acct_%"), name)
  end)
end

function TestStore.test_list_order()
  each(function(s, name)
    s:put_account(account("acct_old", { connected_at = 100 }))
    s:put_account(account("acct_new", { connected_at = 300 }))
    s:put_account(account("acct_mid", { connected_at = 200 }))
    local ids = {}
    for i, a in ipairs(s:list_accounts()) do ids[i] = a.id end
    lu.assertEquals(ids, { "acct_new", "acct_mid", "acct_old" }, name)
  end)
end

function TestStore.test_mark_disconnected_and_delete()
  each(function(s, name)
    s:put_account(account("acct_1"))
    lu.assertTrue(s:mark_disconnected("acct_1", "webhook"), name)
    local a = s:get_account("acct_1")
    lu.assertEquals(a.status, "disconnected", name)
    lu.assertEquals(a.disconnect_reason, "webhook", name)
    lu.assertNil(a.refresh_token, name)
    lu.assertNil(a.access_token, name)
    lu.assertNil(a.stripe_publishable_key, name)
    lu.assertIsNumber(a.disconnected_at, name)
    lu.assertEquals(a.scope, "read_write", name)
    lu.assertFalse(s:mark_disconnected("acct_none", "x"), name)
    lu.assertTrue(s:delete_account("acct_1"), name)
    lu.assertNil(s:get_account("acct_1"), name)
    lu.assertFalse(s:delete_account("acct_1"), name)
  end)
end

function TestStore.test_claim_flow_once()
  each(function(s, name)
    local exp = os.time() + 600
    lu.assertEquals({ s:claim_flow("n1", exp) }, { true }, name)
    -- in flight: claimed, no outcome yet
    local ok, outcome = s:claim_flow("n1", exp)
    lu.assertFalse(ok, name)
    lu.assertNil(outcome, name)
    local f = s:get_flow("n1")
    lu.assertEquals(f.nonce, "n1", name)
    lu.assertEquals(f.expires_at, exp, name)
    lu.assertNil(f.outcome, name)
    lu.assertTrue(s:record_outcome("n1", { status = 303, location = "/connected", account_id = "acct_1" }), name)
    ok, outcome = s:claim_flow("n1", exp)
    lu.assertFalse(ok, name)
    lu.assertEquals(outcome, { status = 303, location = "/connected", account_id = "acct_1" }, name)
    lu.assertEquals(s:get_flow("n1").outcome.status, 303, name)
    -- another nonce is independent
    lu.assertTrue(s:claim_flow("n2", exp), name)
    lu.assertNil(s:record_outcome("nope", {}), name)
    lu.assertNil(s:get_flow("nope"), name)
  end)
end

function TestStore.test_expire()
  each(function(s, name)
    local now = os.time()
    s:claim_flow("old", now - 10)
    s:claim_flow("new", now + 600)
    s:event_once("evt_old", -10)
    s:event_once("evt_new", 600)
    lu.assertEquals(s:expire(now), 2, name)
    lu.assertNil(s:get_flow("old"), name)
    lu.assertNotNil(s:get_flow("new"), name)
    lu.assertFalse(s:event_once("evt_new", 600), name)
    lu.assertTrue(s:event_once("evt_old", 600), name)
  end)
end

function TestStore.test_event_once()
  each(function(s, name)
    lu.assertTrue(s:event_once("evt_1", 3600), name)
    lu.assertFalse(s:event_once("evt_1", 3600), name)
    lu.assertTrue(s:event_once("evt_2", 3600), name)
    -- an expired record lets the id through again
    lu.assertTrue(s:event_once("evt_3", -1), name)
    lu.assertTrue(s:event_once("evt_3", 3600), name)
    lu.assertFalse(s:event_once("evt_3", 3600), name)
    lu.assertTrue(s:forget_event("evt_3"), name)
    lu.assertTrue(s:event_once("evt_3", 3600), name)
  end)
end

-- claim_event / finish_event: a claim held for a lease, then processed.
-- (A negative lease or ttl stands for one that has passed.)
function TestStore.test_claim_and_finish_event()
  each(function(s, name)
    lu.assertEquals(s:claim_event("evt_a", 60), "first", name)
    lu.assertEquals(s:claim_event("evt_a", 60), "processing", name)
    lu.assertFalse(s:event_once("evt_a", 3600), name .. ": a live claim is not new to event_once")
    lu.assertTrue(s:finish_event("evt_a", 3600), name)
    lu.assertEquals(s:claim_event("evt_a", 60), "done", name)
    lu.assertFalse(s:event_once("evt_a", 3600), name)
    -- a claim whose lease has passed (its holder died) is claimed again
    lu.assertEquals(s:claim_event("evt_b", -10), "first", name)
    lu.assertEquals(s:claim_event("evt_b", 60), "first", name)
    lu.assertEquals(s:claim_event("evt_b", 60), "processing", name)
    -- forget_event gives a claim back
    lu.assertTrue(s:forget_event("evt_b"), name)
    lu.assertEquals(s:claim_event("evt_b", 60), "first", name)
    -- a processed id past its ttl is claimed again
    lu.assertEquals(s:claim_event("evt_c", 60), "first", name)
    lu.assertTrue(s:finish_event("evt_c", -10), name)
    lu.assertEquals(s:claim_event("evt_c", 60), "first", name)
    -- event_once's ids are processed ones; an expired claim is event_once's again
    lu.assertTrue(s:event_once("evt_d", 3600), name)
    lu.assertEquals(s:claim_event("evt_d", 60), "done", name)
    lu.assertEquals(s:claim_event("evt_e", -10), "first", name)
    lu.assertTrue(s:event_once("evt_e", 3600), name)
    lu.assertEquals(s:claim_event("evt_e", 60), "done", name)
    -- finish_event without a row (swept meanwhile) still remembers the id
    lu.assertTrue(s:finish_event("evt_f", 3600), name)
    lu.assertEquals(s:claim_event("evt_f", 60), "done", name)
    -- expire drops claims whose lease has passed
    lu.assertEquals(s:claim_event("evt_g", -10), "first", name)
    lu.assertEquals(s:expire(os.time()), 1, name .. ": evt_g")
    lu.assertEquals(s:claim_event("evt_g", 60), "first", name)
    lu.assertErrorMsgContains("string id", s.claim_event, s, "", 60)
    lu.assertErrorMsgContains("must be a number", s.claim_event, s, "evt_h")
    lu.assertErrorMsgContains("must be a number", s.finish_event, s, "evt_h", "later")
  end)
end

function TestStore.test_ping_and_no_counters()
  each(function(s, name)
    lu.assertTrue(s:ping(), name)
    -- Counters live in process memory (stripe_connect.metrics), not in a store.
    lu.assertNil(s.incr, name)
    lu.assertNil(s.counters, name)
  end)
end

function TestStore.test_sqlite_reopen_keeps_data_and_schema_version()
  local dir = tmpdir()
  local path = dir .. "/t.db"
  local s = assert(store.open("sqlite:" .. path))
  s:put_account(account("acct_keep"))
  s:claim_flow("n", os.time() + 60)
  s:close()
  local s2 = assert(store.open("sqlite:" .. path))
  lu.assertEquals(s2:get_account("acct_keep").id, "acct_keep")
  lu.assertFalse((s2:claim_flow("n", os.time() + 60)))
  local r = assert(s2.db:exec{ { "SELECT version FROM schema_version" }, { "PRAGMA journal_mode" },
    { "SELECT count(*) AS n FROM sqlite_master WHERE name = 'counters'" } })
  lu.assertEquals(#r[1], 1)
  lu.assertEquals(r[1][1].version, 4)
  lu.assertEquals(r[2][1].journal_mode, "wal")
  lu.assertEquals(r[3][1].n, 0) -- version 2 dropped the old counters table
  -- a database from a newer version is refused
  assert(s2.db:exec{ { "UPDATE schema_version SET version = 99" } })
  s2:close()
  local s3, err = store.open("sqlite:" .. path)
  lu.assertNil(s3)
  lu.assertStrContains(err, "newer")
  files.rmdir(dir)
end

-- The owner column (version 3): stored, indexed, filtered by accounts_of.
function TestStore.test_owner_and_accounts_of()
  each(function(s, name)
    s:put_account(account("acct_o1", { owner = "user_a", connected_at = 1 }))
    s:put_account(account("acct_o2", { owner = "user_b", connected_at = 2 }))
    s:put_account(account("acct_o3", { owner = "user_a", connected_at = 3, status = "onboarding" }))
    s:put_account(account("acct_o4"))
    lu.assertEquals(s:get_account("acct_o1").owner, "user_a", name)
    lu.assertNil(s:get_account("acct_o4").owner, name)
    local mine = assert(s:accounts_of("user_a"))
    lu.assertEquals(#mine, 2, name)
    lu.assertEquals(mine[1].id, "acct_o3", name .. ": newest first")
    lu.assertEquals(mine[1].status, "onboarding", name)
    lu.assertEquals(#assert(s:accounts_of("nobody")), 0, name)
    lu.assertErrorMsgContains("string id", s.accounts_of, s, nil)
  end)
end

-- old_sqlite(version, stmts) -> the store opened on a database made by
-- the first `version` migration steps holding stmts' rows (migrated on
-- open), its folder.
local function old_sqlite(version, stmts)
  local core = require "stripe_connect.core"
  local sqlite = require "stripe_connect.store.sqlite"
  local dir = tmpdir()
  local path = dir .. "/v" .. version .. ".db"
  local db = assert(core.sqlite_open(path))
  assert(db:migrate(version, { (table.unpack or unpack)(sqlite.MIGRATIONS, 1, version) }))
  assert(db:exec(stmts))
  db:close()
  return assert(store.open("sqlite:" .. path)), dir
end

-- A version-2 database (before the owner column) is migrated on open and
-- keeps its accounts.
function TestStore.test_migrates_a_version_2_database()
  local s, dir = old_sqlite(2, { { "INSERT INTO accounts (id, status, scope, extra) " ..
    "VALUES ('acct_old', 'connected', 'read_write', '{\"note\":\"x\"}')" } })
  local a = s:get_account("acct_old")
  lu.assertEquals(a.note, "x")
  lu.assertNil(a.owner)
  a.owner = "user_c"
  assert(s:put_account(a))
  lu.assertEquals(s:accounts_of("user_c")[1].id, "acct_old")
  local r = assert(s.db:exec{ { "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'accounts_owner'" } })
  lu.assertEquals(#r[1], 1)
  s:close()
  files.rmdir(dir)
end

-- A version-3 database (before the events' done column) is migrated on
-- open: the ids it remembers are processed ones, and claims work.
function TestStore.test_migrates_a_version_3_database()
  local s, dir = old_sqlite(3, { { "INSERT INTO events (id, expires_at) VALUES ('evt_old', ?)", os.time() + 3600 } })
  lu.assertEquals(s:claim_event("evt_old", 60), "done")
  lu.assertFalse(s:event_once("evt_old", 3600))
  lu.assertEquals(s:claim_event("evt_new", 60), "first")
  lu.assertEquals(s:claim_event("evt_new", 60), "processing")
  local r = assert(s.db:exec{ { "SELECT version FROM schema_version" } })
  lu.assertEquals(r[1][1].version, 4)
  s:close()
  files.rmdir(dir)
end

-- PostgreSQL: a version-1 database (before the events' done column) is
-- migrated on open: its remembered ids are processed ones.
function TestStore.test_postgres_migrates_a_version_1_database()
  local core = require "stripe_connect.core"
  local pgstore = require "stripe_connect.store.postgres"
  local url = pg_server():fresh_url()
  local c = assert(core.pg_connect(url))
  assert(c:query("CREATE TABLE schema_version (version integer NOT NULL)"))
  assert(c:query("INSERT INTO schema_version (version) VALUES (1)"))
  for _, sql in ipairs(pgstore.MIGRATIONS[1]) do assert(c:query(sql)) end
  assert(c:query("INSERT INTO events (id, expires_at) VALUES ($1, $2)", "evt_old", os.time() + 3600))
  c:close()
  local s = assert(store.open(url))
  lu.assertEquals(s:claim_event("evt_old", 60), "done")
  lu.assertEquals(s:claim_event("evt_new", 60), "first")
  lu.assertEquals(s:claim_event("evt_new", 60), "processing")
  lu.assertEquals(s:q("SELECT version FROM schema_version")[1].version, 2)
  s:close()
end

-- Values are bound, never spliced into SQL: quotes, SQL text and NUL bytes
-- come back byte for byte.
function TestStore.test_values_are_bound()
  local odd = { "it's", "a'); DROP TABLE accounts; --", "a\0b", "\0", "\"q\"", "100%", "?" }
  each(function(s, name)
    for i, v in ipairs(odd) do
      local id = "acct_" .. i
      lu.assertTrue(s:put_account({ id = id, scope = v, note = v }), name .. " " .. i)
      local a = s:get_account(id)
      lu.assertEquals(a.scope, v, name .. " " .. i)
      lu.assertEquals(a.note, v, name .. " " .. i)
      lu.assertTrue(s:claim_flow(v .. i, os.time() + 60), name .. " " .. i)
      lu.assertFalse((s:claim_flow(v .. i, os.time() + 60)), name .. " " .. i)
    end
    lu.assertEquals(#s:list_accounts(), #odd, name)
    lu.assertNil(s:get_account("acct_1\0"), name)
  end)
end

-- Misuse raises: ids that are not strings, counts that are not numbers.
function TestStore.test_misuse_raises()
  each(function(s, name)
    lu.assertErrorMsgContains("string id", s.get_account, s, 42)
    lu.assertErrorMsgContains("string id", s.claim_flow, s, "", 1)
    lu.assertErrorMsgContains("must be a number", s.claim_flow, s, "n", "soon")
    lu.assertErrorMsgContains("with an id", s.put_account, s, { scope = "x" })
  end)
end

-- PostgreSQL: hosts opening one database at once migrate it once (the
-- advisory lock); a newer schema is refused; after the server restarts the
-- same store answers again (its pooled connections are replaced).
function TestStore.test_postgres_migrates_once_and_refuses_newer()
  local url = pg_server():fresh_url()
  local dir = tmpdir()
  local script = dir .. "/open.lua"
  files.write(script, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n" ..
    "local s = assert(require('stripe_connect.store').open(arg[1]))\n" ..
    "assert(s:claim_flow(arg[2], os.time() + 60))\nio.write('opened')\n")
  local bin = os.getenv("STRIPE_CONNECT_BIN") or "build/stripe-connect"
  local procs = {}
  for i = 1, 4 do
    procs[i] = io.popen("env -u LD_PRELOAD " .. bin .. " run '" .. script .. "' '" .. url .. "' n" .. i .. " 2>&1")
  end
  for i = 1, 4 do
    lu.assertEquals(procs[i]:read("a"), "opened", "opener " .. i)
    procs[i]:close()
  end
  files.rmdir(dir)
  local s = assert(store.open(url))
  local c = s:acquire()
  lu.assertEquals(c:query("SELECT version FROM schema_version")[1].version, 2)
  lu.assertEquals(#c:query("SELECT version FROM schema_version"), 1)
  lu.assertEquals(#c:query("SELECT nonce FROM flows"), 4)
  assert(c:query("UPDATE schema_version SET version = 99"))
  s:release(c)
  s:close()
  local s2, err = store.open(url)
  lu.assertNil(s2)
  lu.assertStrContains(err, "newer")
end

-- A call that raises (a value that cannot be bound) gives its connection back.
function TestStore.test_postgres_pool_survives_misuse()
  local s = assert(store.open(pg_server():fresh_url(), { pool = 2 }))
  for _ = 1, 5 do
    lu.assertErrorMsgContains("cannot bind a table", s.q, s, "SELECT $1::bytea AS v", {})
  end
  lu.assertEquals(s.open, 1)
  lu.assertTrue(s:ping())
  lu.assertErrorMsgContains("pool must be a positive integer", store.open, "postgres://x", { pool = 0 })
  s:close()
end

function TestStore.test_postgres_survives_a_server_restart()
  local server = pg_server()
  local s = assert(store.open(server:fresh_url()))
  lu.assertTrue(s:put_account(account("acct_before")))
  server:halt()
  local ok, err = s:ping()
  lu.assertNil(ok)
  lu.assertStrContains(err, "postgres")
  lu.assertNil((s:get_account("acct_before")))
  server:resume()
  lu.assertTrue(s:ping())
  lu.assertEquals(s:get_account("acct_before").id, "acct_before")
  s:close()
end

-- Memory stores: each new() is private; a name is shared by every opener
-- in the process (what `serve`'s workers get from store.open("memory:")).
function TestStore.test_memory_names()
  local memory = require "stripe_connect.store.memory"
  local a, b = memory.new(), memory.new()
  a:put_account(account("acct_a"))
  lu.assertNil(b:get_account("acct_a"))
  local n1, n2 = memory.new{ name = "spec-shared" }, memory.new{ name = "spec-shared" }
  lu.assertTrue(n1:claim_flow("once", os.time() + 60))
  lu.assertFalse((n2:claim_flow("once", os.time() + 60)))
  n1:close(); n2:close()
  local n3 = memory.new{ name = "spec-shared" } -- the last close dropped it
  lu.assertTrue(n3:claim_flow("once", os.time() + 60))
  n3:close()
  lu.assertErrorMsgContains("unknown option", memory.new, { nope = 1 })
end

return { TestStore = TestStore }
