-- The SQLite store across processes: claim_flow and claim_event are atomic
-- (several host processes race for the same nonces and event ids; each is
-- won exactly once) and a committed account survives kill -9 of the writer.
local lu = require "luaunit"
local server = require "support.server"
local store = require "stripe_connect.store"
local files = require "support.files"
local race = require "support.store_race"

local tmpdir, read, write = files.tmpdir, files.read, files.write

local TestSqliteProcesses = {}

-- Each nonce (claim_flow) and each event id (claim_event: "first", the
-- others "processing") is won by exactly one of the processes.
function TestSqliteProcesses.test_claim_flow_and_claim_event_are_atomic_across_processes()
  local dir = tmpdir()
  local url = "sqlite:" .. dir .. "/race.db"
  assert(store.open(url)):close()
  local rows = {
    { "nonce", "s:claim_flow('nonce' .. i, os.time() + 60)", "true" },
    { "evt_race", "s:claim_event('evt_race' .. i, 60)", "'first'" },
  }
  for _, r in ipairs(rows) do
    local wins = race.run{ url = url, claim = r[2], won = r[3], keys = 40, procs = 6 }
    for i = 1, 40 do
      lu.assertEquals(wins[i], 1, r[1] .. i .. " won exactly once")
    end
  end
  files.rmdir(dir)
end

function TestSqliteProcesses.test_committed_account_survives_kill_9()
  local dir = tmpdir()
  local db = dir .. "/durable.db"
  write(dir .. "/writer.lua", string.format([[
    local s = assert(require("stripe_connect.store").open("sqlite:%s"))
    assert(s:put_account{ id = "acct_durable", scope = "read_write", livemode = false,
      refresh_token = "rt_x", connected_at = os.time() })
    io.write("committed\n"); io.flush()
    require("stripe_connect.core").sleep(60)
  ]], db))
  os.execute(string.format("build/stripe-connect run %s/writer.lua > %s/out 2>&1 & echo $! > %s/pid",
    dir, dir, dir))
  lu.assertNotNil(server.poll(function()
    local s = read(dir .. "/out")
    return s and s:find("committed", 1, true)
  end, 10))
  local pid = read(dir .. "/pid"):match("%d+")
  os.execute("kill -9 " .. pid)
  local s = assert(store.open("sqlite:" .. db))
  local a = s:get_account("acct_durable")
  lu.assertNotNil(a)
  lu.assertEquals(a.refresh_token, "rt_x")
  s:close()
  files.rmdir(dir)
end

return { TestSqliteProcesses = TestSqliteProcesses }
