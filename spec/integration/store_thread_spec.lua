-- The stores under `serve`: SQLite on its database thread (the event loop
-- never waits on it), what an answered callback leaves on disk after
-- kill -9, and one memory store shared by all workers of the process.
local lu = require "luaunit"
local socket = require "socket"
local platform = require "support.platform"
local server = require "support.server"
local files = require "support.files"
local wire = require "support.wire"
local store_mod = require "stripe_connect.store"

local T = {}

-- Hold SQLite's write lock on the database at path from another process
-- (the sqlite3 shell) until release() is called.  -> release
local function hold_write_lock(path)
  local dir = files.tmpdir()
  local locked, release = dir .. "/locked", dir .. "/release"
  local sh = io.popen("sqlite3 '" .. path .. "' >/dev/null 2>&1", "w")
  sh:write(table.concat({
    "BEGIN IMMEDIATE;",
    "CREATE TABLE IF NOT EXISTS held_by_spec (x);",
    ".shell touch '" .. locked .. "'",
    ".shell while [ ! -e '" .. release .. "' ]; do sleep 0.02; done",
    "COMMIT;",
  }, "\n"), "\n")
  sh:flush()
  assert(server.poll(function() return files.read(locked) ~= nil end, 10), "the lock was not taken")
  return function()
    files.write(release, "")
    sh:close()
    files.rmdir(dir)
  end
end

local send, read_answer, answered = wire.send, wire.read_answer, wire.answered

local function send_get(port, path, cookie)
  return send(port, "GET", path, cookie and { Cookie = cookie } or nil)
end

local function prepared_callback(p) return p:prepare_callback() end

-- A slow SQLite: another process holds the write lock while a callback
-- waits on it; /connect and / on the same (single) worker answer anyway.
function T.test_slow_sqlite_does_not_delay_connect()
  local p = platform.start{ workers = 1 }
  local release = hold_write_lock(p.dir .. "/connect.db")
  local cb_path, cookie = prepared_callback(p)
  local cb = send_get(p.port, cb_path, cookie)
  for _, path in ipairs({ "/connect", "/" }) do
    local status = read_answer(send_get(p.port, path))
    lu.assertEquals(status, path == "/connect" and 302 or 200, path)
    lu.assertFalse(answered(cb), "the callback answered while the database was locked (" .. path .. ")")
  end
  release()
  local status, raw = read_answer(cb)
  lu.assertEquals(status, 303, raw)
  lu.assertStrContains(raw, "/connected?account=acct_")
  p:stop()
end

-- Group commit: writes that arrive together share one transaction, and
-- each is answered only once committed (and reads wait for no lock).  While another process holds the
-- lock, the database thread waits on it with the first job; the 39 that
-- queue behind it are committed together once the lock is released.
function T.test_writes_waiting_together_commit_together()
  local dir = files.tmpdir()
  local path = dir .. "/g.db"
  local s = server.start{ app = "spec/support/apps/store_app.lua", env = { STORE_PATH = path },
    args = { "--workers", "2", "--quiet" } }
  local function stats()
    local _, raw = read_answer(send_get(s.port, "/stats"))
    return require("cjson").decode(raw:match("\r\n\r\n(.*)$"))
  end
  local before = stats()
  local release = hold_write_lock(path)
  -- A read takes no write lock: it answers while the other process writes.
  lu.assertEquals((read_answer(send_get(s.port, "/accounts/acct_none"))), 404)
  local conns = {}
  for i = 1, 40 do conns[i] = send(s.port, "POST", "/accounts/acct_g" .. i) end
  -- Every write is queued (none answered) while the lock is held; the
  -- workers still answer what needs no store.
  lu.assertEquals((read_answer(send_get(s.port, "/ping"))), 200)
  for i = 1, 40 do lu.assertFalse(answered(conns[i]), "write " .. i .. " answered before its commit") end
  -- Release the lock only once all 40 writes (and the read) are queued for
  -- the database thread, so that they wait together however slow the
  -- machine is.
  lu.assertTrue(server.poll(function() return stats().submitted - before.submitted == 40 + 1 end, 10),
    "the 40 writes did not all reach the database thread")
  release()
  for i = 1, 40 do
    local status, raw = read_answer(conns[i])
    lu.assertEquals(status, 200, raw)
  end
  local after = stats()
  lu.assertEquals(after.jobs - before.jobs, 40 + 1) -- the writes and the read
  lu.assertTrue(after.commits - before.commits <= 4,
    ("40 writes took %d transactions"):format(after.commits - before.commits))
  for i = 1, 40 do
    lu.assertEquals((read_answer(send_get(s.port, "/accounts/acct_g" .. i))), 200, i)
  end
  s:stop()
  files.rmdir(dir)
end

-- kill -9 while callbacks are in flight: every account whose success
-- answer (303) was served is in the database afterwards.
function T.test_kill9_keeps_every_answered_account()
  local p = platform.start{ workers = 2 }
  local conns = {}
  local flows = {}
  for i = 1, 16 do flows[i] = { prepared_callback(p) } end
  -- The first four token calls answer late: those callbacks are still in
  -- flight (flow claimed, code being exchanged) when the server is killed.
  p:fault{ path = "/oauth/token", delay = 5, count = 4 }
  for i = 1, 16 do conns[i] = send_get(p.port, flows[i][1], flows[i][2]) end
  local answered_ids, buf, open = {}, {}, {}
  for i = 1, 16 do buf[conns[i]], open[#open + 1] = "", conns[i] end
  local deadline = socket.gettime() + 20
  while #answered_ids < 8 and socket.gettime() < deadline do
    local ready = socket.select(open, nil, 1)
    for _, c in ipairs(ready) do
      c:settimeout(0)
      local data, _, partial = c:receive("*a")
      buf[c] = buf[c] .. (data or partial or "")
      local id = buf[c]:match("^HTTP/1%.1 303 .-account=(acct_%w+).-\r\n\r\n")
      if id then
        answered_ids[#answered_ids + 1] = id
        for k, o in ipairs(open) do if o == c then table.remove(open, k) break end end
      end
    end
  end
  p.platform:kill()
  for _, c in ipairs(conns) do c:close() end
  lu.assertTrue(#answered_ids >= 8, "only " .. #answered_ids .. " callbacks were answered")
  local s = assert(store_mod.open("sqlite:" .. p.dir .. "/connect.db"))
  for _, id in ipairs(answered_ids) do
    local a = s:get_account(id)
    lu.assertNotNil(a, id .. " was answered but is not in the database")
    lu.assertEquals(a.status, "connected", id)
  end
  lu.assertTrue(#s:list_accounts() < 16, "the delayed callbacks should not have finished")
  s:close()
  p.platform = nil
  p:stop()
end

-- Finding 3 (issue 13): DATABASE=memory: with two workers spent a code twice.
-- Now one in-memory SQLite per process is shared by its workers: twin
-- callbacks (the same code, state and cookie, sent at once on two
-- connections, which SO_REUSEPORT spreads over the workers) make one token
-- call each, like SQLite, and what one worker stored the other lists.
function T.test_finding_3_memory_twins_on_two_workers_spend_the_code_once()
  local p = platform.start{ workers = 2, env = { DATABASE = "memory:" } }
  local pairs_ = 10
  for _ = 1, pairs_ do
    local path, cookie = prepared_callback(p)
    local a, b = send_get(p.port, path, cookie), send_get(p.port, path, cookie)
    local sa, ra = read_answer(a)
    local sb, rb = read_answer(b)
    lu.assertEquals(sa, 303, ra)
    lu.assertEquals(sb, 303, rb)
    lu.assertEquals(ra:match("Location: (%S+)"), rb:match("Location: (%S+)"))
  end
  lu.assertEquals(p:token_calls(), pairs_)
  -- Both workers answered callbacks, so some twins met across workers.
  local log = p.platform:log_text()
  lu.assertStrContains(log, "worker=1 method=GET path=\"/oauth/callback\"")
  lu.assertStrContains(log, "worker=2 method=GET path=\"/oauth/callback\"")
  -- And what one worker stored, the other lists.
  -- And what one worker stored, the other lists: the accounts gauge of
  -- /metrics (read from the store) on fresh connections, until both
  -- workers have answered it (SO_REUSEPORT spreads new connections).
  local seen, tries = {}, 0
  repeat
    tries = tries + 1
    local status, raw = read_answer(send_get(p.port, "/metrics"))
    lu.assertEquals(status, 200)
    seen[raw:match('stripe_connect_accounts{status="connected"} (%d+)') or "none"] = true
    log = p.platform:log_text()
  until tries >= 6 and ((log:find('worker=1 method=GET path="/metrics"', 1, true)
    and log:find('worker=2 method=GET path="/metrics"', 1, true)) or tries >= 60)
  lu.assertStrContains(log, 'worker=1 method=GET path="/metrics"')
  lu.assertStrContains(log, 'worker=2 method=GET path="/metrics"')
  lu.assertEquals(seen, { [tostring(pairs_)] = true })
  p:stop()
end

return { TestStoreThread = T }
