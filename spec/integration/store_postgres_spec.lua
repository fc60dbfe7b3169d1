-- The PostgreSQL store under `serve`: queries run on libpq's asynchronous
-- API on the worker's event loop, so a slow query (pg_sleep) holds only its
-- own request; after the server restarts the same host answers again; of
-- several processes claiming one event id at once, one wins.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local server = require "support.server"
local http = require "support.http"
local postgres = require "support.postgres"
local wire = require "support.wire"
local race = require "support.store_race"

local T = {}

local pg
function T.setupClass() pg = postgres.start() end
function T.teardownClass() if pg then pg:stop() end end

local function body(res) return cjson.decode(res.body) end

-- The backend running pg_sleep(600), once it runs.
local function sleeping_backend()
  local c = assert(core.pg_connect(pg.url))
  local pid = server.poll(function()
    local r = assert(c:query("SELECT pid FROM pg_stat_activity WHERE state = 'active' " ..
      "AND query LIKE 'SELECT pg_sleep(600)%'"))
    return r[1] and r[1].pid
  end, 10)
  return c, pid
end

function T.test_pg_sleep_delays_no_other_request_of_the_worker()
  local s = server.start{ app = "spec/support/apps/pg_app.lua", env = { DATABASE = pg:fresh_url() },
    args = { "--workers", "1" } }
  local slow = wire.send(s.port, "GET", "/sleep")
  local c, pid = sleeping_backend()
  lu.assertNotNil(pid, "pg_sleep is not running")
  -- One worker, one query sleeping: every other request answers meanwhile.
  for i = 1, 20 do
    local id = "acct_w" .. i
    lu.assertEquals(http.request{ method = "POST", url = s.url .. "/accounts/" .. id, body = "" }.status, 200)
    local res = http.get(s.url .. "/accounts/" .. id)
    lu.assertEquals(res.status, 200)
    lu.assertEquals(body(res).id, id)
    lu.assertEquals(http.get(s.url .. "/ping").status, 200)
  end
  lu.assertFalse(wire.answered(slow), "the slow query answered before it was cancelled")
  lu.assertTrue(c:query("SELECT pg_cancel_backend($1::int) AS ok", pid)[1].ok)
  local status, raw = wire.read_answer(slow)
  lu.assertEquals(status, 503)
  lu.assertStrContains(raw, "canceling statement")
  -- The cancelled query's connection went back to the pool and still works.
  lu.assertEquals(http.get(s.url .. "/ping").status, 200)
  c:close()
  lu.assertEquals(s:stop(), 0)
end

function T.test_the_host_recovers_after_a_server_restart()
  local s = server.start{ app = "spec/support/apps/pg_app.lua", env = { DATABASE = pg:fresh_url() },
    args = { "--workers", "2" } }
  for i = 1, 4 do lu.assertEquals(http.get(s.url .. "/ping").status, 200) end
  pg:halt()
  for _ = 1, 4 do
    local res = http.get(s.url .. "/ping")
    lu.assertEquals(res.status, 503)
    lu.assertStrContains(body(res).error, "postgres")
    lu.assertNotStrContains(res.body, postgres.PASSWORD)
  end
  pg:resume()
  for i = 1, 8 do
    lu.assertEquals(http.request{ method = "POST", url = s.url .. "/accounts/acct_r" .. i, body = "" }.status, 200)
    lu.assertEquals(http.get(s.url .. "/accounts/acct_r" .. i).status, 200)
  end
  lu.assertEquals(s:stop(), 0)
end

-- claim_event is one INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING:
-- of six processes claiming the same ids at once, one gets "first" for each.
function T.test_claim_event_is_atomic_across_processes()
  local url = pg:fresh_url()
  assert(require("stripe_connect.store").open(url)):close()
  local wins = race.run{ url = url, claim = "s:claim_event('evt_race' .. i, 60)", won = "'first'",
    keys = 40, procs = 6 }
  for i = 1, 40 do
    lu.assertEquals(wins[i], 1, "evt_race" .. i .. " claimed first exactly once")
  end
end

return { TestStorePostgres = T }
