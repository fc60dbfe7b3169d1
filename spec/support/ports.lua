-- spec/support/ports.lua — loopback ports for servers that must know each
-- other's port before either starts (the platform's URL goes into the fake's
-- redirect URIs), and for "connection refused" rows.
--
--   local ports = require "support.ports"
--   ports.free_port()   -- a port nothing listens on now
--
-- The port comes from below the kernel's ephemeral range
-- (/proc/sys/net/ipv4/ip_local_port_range), picked at random and checked by
-- binding it.  A port bound on :0 and closed comes from that range, so until
-- the server binds it again, any other process's `:0` listener or outgoing
-- connection could be handed the same port; below the range only another
-- free_port() call picking the same random port can take it.
local core = require "stripe_connect.core"
local socket = require "socket"

local M = {}

-- The lowest port the kernel hands out for :0 and outgoing connections.
local function ephemeral_low()
  local f = io.open("/proc/sys/net/ipv4/ip_local_port_range")
  local low = f and tonumber((f:read("l") or ""):match("^%s*(%d+)"))
  if f then f:close() end
  return low or 32768
end

local FIRST = 10000

-- random_below(n) -> a uniform-enough integer in [0, n) from the CSPRNG
-- (math.random would repeat across spec processes started together).
local function random_below(n)
  local a, b, c = core.random_bytes(3):byte(1, 3)
  return (a * 65536 + b * 256 + c) % n
end

-- bindable(port) -> whether 127.0.0.1:port can be bound now.
local function bindable(port)
  local s = socket.tcp()
  local ok = s:bind("127.0.0.1", port)
  s:close()
  return ok == 1
end

function M.free_port()
  local low = ephemeral_low()
  if low > FIRST + 1000 then
    for _ = 1, 64 do
      local port = FIRST + random_below(low - FIRST)
      if bindable(port) then return port end
    end
  end
  -- A machine whose ephemeral range starts low: an ephemeral port, checked.
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

return M
