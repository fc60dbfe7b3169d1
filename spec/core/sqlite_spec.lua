-- core.sqlite_open: binding, results, migration, sharing and misuse (Lua 5.4
-- and LuaJIT builds of the core).
local lu = require "luaunit"
local core = require "stripe_connect.core"

local T = {}

local function tmpdb()
  local path = os.tmpname()
  os.remove(path)
  return path
end

local function cleanup(path)
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
end

local function open_t()
  local db = assert(core.sqlite_open(":memory:"))
  assert(db:exec{ { "CREATE TABLE t (k TEXT PRIMARY KEY, v)" } })
  return db
end

-- Values go in bound and come back with their type.
function T.test_values_round_trip()
  local rows = {
    { "text", "hello", "hello" },
    { "quote", "it's", "it's" },
    { "sql", "x'); DROP TABLE t; --", "x'); DROP TABLE t; --" },
    { "nul bytes", "a\0b\0", "a\0b\0" },
    { "empty", "", "" },
    { "integer", 42, 42 },
    { "negative", -7, -7 },
    { "big integer", 2 ^ 53, 2 ^ 53 },
    { "float", 2.5, 2.5 },
    { "true", true, 1 },
    { "false", false, 0 },
  }
  local db = open_t()
  for i, row in ipairs(rows) do
    local k = "k" .. i
    assert(db:exec{ { "INSERT INTO t (k, v) VALUES (?, ?)", k, row[2] } })
    local r = assert(db:exec{ { "SELECT v FROM t WHERE k = ?", k } })
    lu.assertEquals(r[1][1].v, row[3], row[1])
  end
  -- nil binds NULL, and a NULL column is absent from the row
  assert(db:exec{ { "INSERT INTO t (k, v) VALUES (?, ?)", "null", nil } })
  local r = assert(db:exec{ { "SELECT k, v FROM t WHERE k = ?", "null" } })
  lu.assertEquals(r[1][1], { k = "null" })
  db:close()
end

-- One result per statement: changes for writes, rows for reads.
function T.test_results_per_statement()
  local db = open_t()
  local r = assert(db:exec{
    { "INSERT INTO t (k, v) VALUES (?, ?), (?, ?)", "a", 1, "b", 2 },
    { "INSERT OR IGNORE INTO t (k, v) VALUES (?, ?)", "a", 9 },
    { "SELECT k, v FROM t ORDER BY k" },
    { "UPDATE t SET v = v + 1" },
  })
  lu.assertEquals(r[1].changes, 2)
  lu.assertEquals(r[2].changes, 0)
  lu.assertEquals(r[3].changes, 0)
  lu.assertEquals({ r[3][1], r[3][2] }, { { k = "a", v = 1 }, { k = "b", v = 2 } })
  lu.assertEquals(r[4].changes, 2)
  -- ? inside quotes and comments is not a value
  r = assert(db:exec{ { "SELECT '?' AS q, ? AS v -- trailing ?\n", 5 } })
  lu.assertEquals(r[1][1], { q = "?", v = 5 })
  db:close()
end

-- A job is all or nothing: a failing statement undoes the job's others,
-- and the failure is an answer, not a raise.
function T.test_a_failing_job_changes_nothing()
  local db = open_t()
  local r, err = db:exec{
    { "INSERT INTO t (k, v) VALUES (?, ?)", "x", 1 },
    { "INSERT INTO t (k, v) VALUES (?, ?)", "x", 2 },
  }
  lu.assertNil(r)
  lu.assertStrContains(err, "UNIQUE")
  lu.assertEquals(assert(db:exec{ { "SELECT count(*) AS n FROM t" } })[1][1].n, 0)
  local rows = {
    { "syntax", { { "SELEKT 1" } }, "syntax error" },
    { "no table", { { "SELECT * FROM nope" } }, "no such table" },
    { "two statements", { { "SELECT 1; SELECT 2" } }, "one statement per entry" },
  }
  for _, row in ipairs(rows) do
    local res, e = db:exec(row[2])
    lu.assertNil(res, row[1])
    lu.assertStrContains(e, row[3], false, row[1])
  end
  db:close()
end

function T.test_misuse_raises()
  local db = open_t()
  local rows = {
    { "not a table", "SELECT 1", "table expected" },
    { "no statements", {}, "1 to 64 statements" },
    { "entry not a table", { "SELECT 1" }, "must be a table" },
    { "sql not a string", { { 42 } }, "SQL must be a string" },
    { "table value", { { "SELECT ?", {} } }, "table cannot be stored" },
    { "function value", { { "SELECT ?", print } }, "function cannot be stored" },
  }
  for _, row in ipairs(rows) do
    lu.assertErrorMsgContains(row[3], db.exec, db, row[2])
  end
  lu.assertErrorMsgContains("unknown option", core.sqlite_open, ":memory:", { nope = 1 })
  lu.assertErrorMsgContains("busy_timeout", core.sqlite_open, ":memory:", { busy_timeout = -1 })
  local none, err = core.sqlite_open(":memory:", { synchronous = "sometimes" })
  lu.assertNil(none)
  lu.assertStrContains(err, "synchronous")
  db:close()
  lu.assertErrorMsgContains("closed", db.exec, db, { { "SELECT 1" } })
  lu.assertTrue(db:close()) -- idempotent
end

function T.test_open_failure_answers()
  local db, err = core.sqlite_open("/nonexistent-dir/x/y.db")
  lu.assertNil(db)
  lu.assertStrContains(err, "cannot open")
end

-- Migration: runs the missing versions once, refuses a newer database.
function T.test_migrate()
  local path = tmpdb()
  local steps = { [1] = { "CREATE TABLE a (x)" }, [2] = { "CREATE TABLE b (y)", "INSERT INTO b VALUES (1)" } }
  local db = assert(core.sqlite_open(path))
  lu.assertEquals(db:migrate(1, steps), 1)
  lu.assertEquals(db:migrate(2, steps), 2)
  lu.assertEquals(db:migrate(2, steps), 2) -- nothing to do: b keeps one row
  lu.assertEquals(assert(db:exec{ { "SELECT count(*) AS n FROM b" } })[1][1].n, 1)
  local r, err = db:migrate(1, steps)
  lu.assertNil(r)
  lu.assertStrContains(err, "newer than this code")
  -- a failing step rolls the whole migration back
  local bad = { [1] = steps[1], [2] = steps[2], [3] = { "CREATE TABLE c (z)", "SELEKT" } }
  lu.assertNil((db:migrate(3, bad)))
  lu.assertEquals(db:migrate(2, steps), 2)
  lu.assertEquals(#assert(db:exec{ { "SELECT name FROM sqlite_master WHERE name = 'c'" } })[1], 0)
  lu.assertEquals(assert(db:exec{ { "PRAGMA journal_mode" } })[1][1].journal_mode, "wal")
  db:close()
  cleanup(path)
end

-- Opening the same file or name again shares one database (and thread).
function T.test_sharing()
  local path = tmpdb()
  local a = assert(core.sqlite_open(path))
  local b = assert(core.sqlite_open(path))
  assert(a:exec{ { "CREATE TABLE s (x)" }, { "INSERT INTO s VALUES (1)" } })
  lu.assertEquals(b:stats(), a:stats())
  lu.assertEquals(a:stats().jobs, 1)
  lu.assertTrue(a:stats().submitted >= a:stats().jobs)
  a:close(); b:close(); cleanup(path)
  local m1 = assert(core.sqlite_open(":memory:", { name = "spec-core" }))
  local m2 = assert(core.sqlite_open(":memory:", { name = "spec-core" }))
  local private = assert(core.sqlite_open(":memory:"))
  assert(m1:exec{ { "CREATE TABLE s (x)" } })
  lu.assertNotNil(m2:exec{ { "SELECT * FROM s" } })
  lu.assertNil(private:exec{ { "SELECT * FROM s" } })
  m1:close(); m2:close(); private:close()
end

return { TestCoreSqlite = T }
