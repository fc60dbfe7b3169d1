-- The specs' own helpers that could make a spec flaky: support.ports hands
-- out ports the kernel never gives to a `:0` listener or an outgoing
-- connection, and support.server.poll keeps its deadline on the clock.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local socket = require "socket"
local ports = require "support.ports"
local server = require "support.server"

local function ephemeral_low()
  local f = assert(io.open("/proc/sys/net/ipv4/ip_local_port_range"))
  local low = tonumber(f:read("l"):match("^%s*(%d+)"))
  f:close()
  return low
end

local TestSupport = {}

function TestSupport.test_free_port_is_below_the_ephemeral_range_and_free()
  local low = ephemeral_low()
  local seen = {}
  for _ = 1, 20 do
    local port = ports.free_port()
    lu.assertTrue(port >= 1024 and port < low, "port " .. port .. " is not below " .. low)
    seen[port] = true
    local s = assert(socket.bind("127.0.0.1", port))
    s:close()
  end
  local distinct = 0
  for _ in pairs(seen) do distinct = distinct + 1 end
  lu.assertTrue(distinct > 1, "twenty calls gave one port")
  lu.assertIs(server.free_port, ports.free_port)
end

function TestSupport.test_free_port_skips_a_port_in_use()
  -- Hold every port but a few would take too long: hold the ports it
  -- returns and check none comes back while held.
  local held, seen = {}, {}
  for _ = 1, 10 do
    local port = ports.free_port()
    lu.assertNil(seen[port], "a held port came back: " .. port)
    seen[port] = true
    held[#held + 1] = assert(socket.bind("127.0.0.1", port))
  end
  for _, s in ipairs(held) do s:close() end
end

function TestSupport.test_a_server_listens_on_a_free_port()
  local port = ports.free_port()
  local s = server.start{ app = "scripts/fake_connect.lua", args = { "--listen", "127.0.0.1:" .. port } }
  local ok, err = pcall(function()
    lu.assertEquals(s.port, port)
    local c = assert(socket.connect("127.0.0.1", port))
    c:close()
  end)
  s:stop()
  assert(ok, err)
end

function TestSupport.test_poll_deadline_counts_the_time_fn_takes()
  local calls, t0 = 0, core.monotonic()
  local v = server.poll(function() calls = calls + 1; core.sleep(0.1); return nil end, 0.3, 0.001)
  lu.assertNil(v)
  -- summing only the 1 ms steps would allow some 300 calls
  lu.assertTrue(calls <= 5, calls .. " calls in a 0.3 s deadline of 0.1 s calls")
  lu.assertTrue(core.monotonic() - t0 >= 0.3)
end

return { TestSupport = TestSupport }
