-- Graceful shutdown: on SIGTERM/SIGINT the server stops accepting, lets
-- in-flight requests finish (within --shutdown-timeout), closes idle
-- keep-alive connections, and exits 0.
local lu = require "luaunit"
local socket = require "socket"
local core = require "stripe_connect.core"
local server = require "support.server"
local http = require "support.http"
local files = require "support.files"

local APP = "spec/support/apps/serve_basic.lua"

-- Start a background curl for url; returns the paths of its outputs.
local function background_get(url)
  local base = os.tmpname()
  os.remove(base)
  os.execute(("(curl -s -o %s.body -w '%%{http_code}' '%s' > %s.code; echo done > %s.done) &"):format(
    base, url, base, base))
  return base
end

local function refused(port)
  local c = socket.connect("127.0.0.1", port)
  if c then c:close() end
  return c == nil
end

local TestServeShutdown = {}

function TestServeShutdown.test_in_flight_request_completes_then_exit_0()
  for _, sig in ipairs{ "TERM", "INT" } do
    local s = server.start{ app = APP, args = { "--workers", "2" } }
    local marker = os.tmpname()
    os.remove(marker)
    local out = background_get(s.url .. "/slow-marker?s=1&file=" .. core.url_encode(marker))
    lu.assertNotNil(server.poll(function() return files.read(marker) end, 10), "request never started")
    s:signal(sig)
    lu.assertNotNil(server.poll(function() return refused(s.port) end, 5), sig .. ": still accepting")
    lu.assertNotNil(server.poll(function() return files.read(out .. ".done") end, 10))
    lu.assertEquals(files.read(out .. ".code"), "200", sig)
    lu.assertEquals(files.read(out .. ".body"), "slept", sig)
    lu.assertEquals(s:stop(), 0, sig)
    lu.assertStrContains(s:log_text(), 'path="/slow-marker" status=200')
    os.remove(marker)
    os.execute("rm -f " .. out .. ".*")
  end
end

-- The deploy case: a callback waiting on Stripe when SIGTERM comes finishes
-- its outbound call and answers before the server exits.
function TestServeShutdown.test_in_flight_outbound_call_completes_then_exit_0()
  local up = server.start{ app = "spec/support/apps/serve_upstream.lua", args = { "--workers", "1" } }
  local s = server.start{ app = APP, args = { "--workers", "2" } }
  local inner = up.url .. "/hold?g=shutdown&i=1"
  local out = background_get(s.url .. "/proxy?url=" .. core.url_encode(inner))
  lu.assertNotNil(server.poll(function()
    local res = http.get(up.url .. "/held?g=shutdown")
    return res and res.body == "1"
  end, 10), "the handler never reached the upstream")
  s:signal("TERM")
  lu.assertNotNil(server.poll(function() return refused(s.port) end, 5), "still accepting")
  lu.assertNil(s:exit_code(), "exited with a request in flight")
  assert(http.request{ method = "POST", url = up.url .. "/release?g=shutdown" })
  lu.assertNotNil(server.poll(function() return files.read(out .. ".done") end, 10))
  lu.assertEquals(files.read(out .. ".code"), "200")
  lu.assertStrContains(files.read(out .. ".body"), '"body":"released 1"')
  lu.assertEquals(s:stop(), 0)
  lu.assertEquals(up:stop(), 0)
  os.execute("rm -f " .. out .. ".*")
end

function TestServeShutdown.test_idle_keep_alive_connections_do_not_delay_exit()
  local s = server.start{ app = APP, args = { "--workers", "1" } }
  local c = assert(socket.connect("127.0.0.1", s.port))
  c:settimeout(5)
  c:send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
  assert(c:receive("*l"))
  s:signal("TERM")
  lu.assertNotNil(server.poll(function() return s:exit_code() end, 5), "server did not exit")
  lu.assertEquals(s:stop(), 0)
  c:close()
end

function TestServeShutdown.test_deadline_cuts_a_stuck_request()
  local s = server.start{ app = APP, args = { "--workers", "1", "--shutdown-timeout", "0.3" } }
  local marker = os.tmpname()
  os.remove(marker)
  local out = background_get(s.url .. "/slow-marker?s=60&file=" .. core.url_encode(marker))
  lu.assertNotNil(server.poll(function() return files.read(marker) end, 10))
  s:signal("TERM")
  lu.assertNotNil(server.poll(function() return s:exit_code() end, 10), "server did not exit")
  lu.assertEquals(s:stop(), 0)
  lu.assertStrContains(s:log_text(), "shutdown deadline passed")
  lu.assertNotNil(server.poll(function() return files.read(out .. ".done") end, 10))
  lu.assertEquals(files.read(out .. ".code"), "000")               -- the client saw the connection close
  os.remove(marker)
  os.execute("rm -f " .. out .. ".*")
end

return { TestServeShutdown = TestServeShutdown }
