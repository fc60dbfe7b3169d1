-- The SQLite store across processes: claim_flow is atomic (several host
-- processes race for the same nonces; each nonce is won exactly once) and a
-- committed account survives kill -9 of the writer.
local lu = require "luaunit"
local server = require "support.server"
local store = require "stripe_connect.store"
local files = require "support.files"

local tmpdir, read, write = files.tmpdir, files.read, files.write

local TestSqliteProcesses = {}

function TestSqliteProcesses.test_claim_flow_is_atomic_across_processes()
  local dir = tmpdir()
  local db = dir .. "/race.db"
  assert(store.open("sqlite:" .. db)):close()
  local NONCES, PROCS = 40, 6
  write(dir .. "/claim.lua", string.format([[
    local s = assert(require("stripe_connect.store").open("sqlite:%s"))
    local won = {}
    for i = 1, %d do
      local ok, err = s:claim_flow("nonce" .. i, os.time() + 60)
      assert(ok ~= nil, err)
      if ok then won[#won + 1] = i end
    end
    io.write(table.concat(won, ","), "\n")
  ]], db, NONCES))
  for i = 1, PROCS do
    os.execute(string.format("(build/stripe-connect run %s/claim.lua > %s/out%d.tmp 2>&1; mv %s/out%d.tmp %s/out%d) &",
      dir, dir, i, dir, i, dir, i))
  end
  local wins = {}
  for i = 1, PROCS do
    local out = server.poll(function() return read(dir .. "/out" .. i) end, 30)
    lu.assertNotNil(out, "process " .. i .. " finished")
    lu.assertNotNil(out and out:match("^[%d,]*\n$"), "process " .. i .. ": " .. tostring(out))
    for n in out:gmatch("%d+") do wins[n] = (wins[n] or 0) + 1 end
  end
  for i = 1, NONCES do
    lu.assertEquals(wins[tostring(i)], 1, "nonce" .. i .. " won exactly once")
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
