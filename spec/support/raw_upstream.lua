-- A misbehaving HTTP upstream on a raw socket (LuaSocket), for the client
-- specs: `stripe-connect run spec/support/raw_upstream.lua PORTFILE`.
-- Serves one connection at a time; by request path:
--   /partial  headers promise 100 bytes, 9 arrive, then the socket closes
--   /rst      the same, then the connection is reset (SO_LINGER 0)
--   /nothing  closes without answering
-- Writes its port to PORTFILE once listening; exits after 60 s without a
-- connection (so a failed spec leaves nothing behind).
local socket = require "socket"

local portfile = assert(arg[1], "usage: raw_upstream.lua PORTFILE")
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
local f = assert(io.open(portfile .. ".tmp", "w"))
f:write(port, "\n")
f:close()
os.rename(portfile .. ".tmp", portfile)
srv:settimeout(60)

while true do
  local c = srv:accept()
  if not c then break end
  c:settimeout(5)
  local line = c:receive("*l") or ""
  repeat local h = c:receive("*l") until not h or h == ""
  local path = line:match("^%u+ (%S+)") or ""
  local partial = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"
  if path == "/partial" then
    c:send(partial)
    c:close()
  elseif path == "/rst" then
    c:send(partial)
    c:setoption("linger", { on = true, timeout = 0 })
    c:close()
  else
    c:close()
  end
end
