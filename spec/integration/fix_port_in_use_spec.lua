-- Issue 13, finding 13: a port another process listens on refuses the
-- start ("cannot listen on H:P: in use"), for `serve` and for `make run`;
-- SO_REUSEPORT is only for the workers of one process.  The first server
-- keeps answering.
local lu = require "luaunit"
local socket = require "socket"
local server = require "support.server"
local http = require "support.http"
local files = require "support.files"

local APP = "spec/support/apps/serve_basic.lua"

local TestFixPortInUse = {}

-- serve on `port` in the foreground: exit code, stderr.
local function serve_on(port, workers)
  local p = io.popen(server.bin .. " serve " .. APP .. " --listen 127.0.0.1:" .. port
    .. " --workers " .. (workers or 2) .. " 2>&1 </dev/null; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out
end

function TestFixPortInUse.test_a_second_serve_on_the_same_port_exits()
  local first = server.start{ app = APP, args = { "--workers", "2" } }
  local ok, err = pcall(function()
    for _ = 1, 2 do
      local rc, out = serve_on(first.port)
      lu.assertEquals(rc, 1, out)
      lu.assertStrContains(out, "cannot listen on 127.0.0.1:" .. first.port .. ": in use")
      lu.assertNotStrContains(out, "listening on")
    end
    -- every request still reaches the first server's app
    for _ = 1, 20 do
      local res = assert(http.get(first.url .. "/hello"))
      lu.assertEquals(res.status, 200)
    end
  end)
  lu.assertEquals(first:stop(), 0)
  if not ok then error(err, 0) end
end

function TestFixPortInUse.test_a_port_held_by_another_program()
  local l = assert(socket.bind("127.0.0.1", 0))
  local _, port = l:getsockname()
  local rc, out = serve_on(port, 1)
  l:close()
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(out, "cannot listen on 127.0.0.1:" .. port .. ": in use")
end

function TestFixPortInUse.test_the_port_is_free_again_after_a_stop()
  local port = server.free_port()
  local script = [[
    build/stripe-connect serve ]] .. APP .. [[ --listen 127.0.0.1:]] .. port .. [[ --workers 2 2>/dev/null &
    pid=$!
    for _ in $(seq 1 100); do curl -fsS -o /dev/null http://127.0.0.1:]] .. port .. [[/hello 2>/dev/null && break; sleep 0.05; done
    kill $pid; wait $pid
  ]]
  lu.assertTrue(os.execute(script) == true)
  local s = io.popen(server.bin .. " serve " .. APP .. " --listen 127.0.0.1:" .. port .. " --workers 2 2>&1 & echo $!")
  local pid = s:read("l")
  local up = server.poll(function() return http.get("http://127.0.0.1:" .. port .. "/hello") end, 10)
  os.execute("kill " .. pid)
  s:close()
  lu.assertNotNil(up, "a restart on the same port serves")
end

function TestFixPortInUse.test_make_run_refuses_a_port_in_use()
  local first = server.start{ app = APP, args = { "--workers", "1" } }
  local dir = files.tmpdir()
  local p = io.popen(string.format("env -u STRIPE_SECRET_KEY -u STRIPE_CLIENT_ID -u DATABASE PORT=%d FAKE_PORT=%d "
    .. "DATA_DIR=%s timeout 60 build/stripe-connect run scripts/dev.lua 2>&1 </dev/null; echo \"rc=$?\"",
    first.port, server.free_port(), dir))
  local out = p:read("a")
  p:close()
  local still = http.get(first.url .. "/hello")
  lu.assertEquals(first:stop(), 0)
  files.rmdir(dir)
  lu.assertEquals(tonumber(out:match("rc=(%d+)%s*$")), 1, out)
  lu.assertStrContains(out, "cannot listen on 127.0.0.1:" .. first.port .. ": in use")
  lu.assertStrContains(out, "make run: the platform did not start")
  lu.assertEquals(still and still.status, 200)
end

return { TestFixPortInUse = TestFixPortInUse }
