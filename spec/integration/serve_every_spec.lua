-- core.every under serve (host/tasks.c): with two workers exactly one arms
-- the timer; each run is a coroutine whose store calls and sleep yield; a
-- run that raises is logged with its traceback and the next tick runs
-- again; no request is needed for any of it.
local lu = require "luaunit"
local http = require "support.http"
local server = require "support.server"

local TestServeEvery = {}

function TestServeEvery.test_one_worker_runs_the_task_and_errors_do_not_stop_it()
  local s = server.start{ app = "spec/support/apps/serve_every.lua", args = { "--workers", "2" } }
  local ok, err = pcall(function()
    local n = 0
    local deadline = os.time() + 20
    repeat
      require("stripe_connect.core").sleep(0.1)
      n = tonumber(assert(http.get(s.url .. "/ticks")).body) or 0
    until n >= 7 or os.time() > deadline
    lu.assertTrue(n >= 7, "the task ran " .. n .. " times")
    local log = s:log_text()
    lu.assertStrContains(log, "task error:")
    lu.assertStrContains(log, "task failure number 1")
    lu.assertStrContains(log, "task failure number 2")
    lu.assertStrContains(log, "stack traceback")
    lu.assertNotStrContains(log, "handler error")
    -- armed on worker 1 only: ask both workers (fresh connections)
    local seen = {}
    for _ = 1, 40 do
      local c = assert(require("socket").connect("127.0.0.1", s.port))
      c:send("GET /armed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local body = (c:receive("*a") or ""):match("\r\n\r\n(.*)$")
      c:close()
      seen[body] = true
      if seen["true 1"] and seen["false 2"] then break end
    end
    lu.assertEquals(seen, { ["true 1"] = true, ["false 2"] = true })
  end)
  s:stop()
  if not ok then error(err, 0) end
end

function TestServeEvery.test_misuse_raises_at_load()
  local rows = {
    { "return (require 'stripe_connect.core').every(0, function() end) and {}", "seconds" },
    { "return (require 'stripe_connect.core').every(1, 'x') and {}", "function" },
  }
  for _, r in ipairs(rows) do
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write(r[1])
    f:close()
    local p = io.popen(server.bin .. " serve " .. path .. " --listen 127.0.0.1:0 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(path)
    lu.assertStrContains(out, r[2], false, r[1])
  end
end

return { TestServeEvery = TestServeEvery }
