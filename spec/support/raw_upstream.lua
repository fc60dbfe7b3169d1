-- A misbehaving HTTP upstream on a raw socket (LuaSocket), for the client
-- specs: `stripe-connect run spec/support/raw_upstream.lua PORTFILE`.
-- Serves one connection at a time; by request path:
--   /partial  headers promise 100 bytes, 9 arrive, then the socket closes
--   /rst      the same, then the connection is reset (SO_LINGER 0)
--   /nothing  closes without answering
--   /skewed/… 200 with a Date header an hour in the past (the doctor's clock check)
-- Writes its port to PORTFILE once listening; exits after 60 s without a
-- connection (so a failed spec leaves nothing behind).
package.path = "spec/?.lua;" .. package.path
local listen = require "support.listen"

local srv = listen(arg[1])

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
  elseif path:match("^/skewed/") then
    c:send("HTTP/1.1 200 OK\r\nDate: " .. os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() - 3600) ..
      "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    c:close()
  elseif path == "/rst" then
    c:send(partial)
    c:setoption("linger", { on = true, timeout = 0 })
    c:close()
  else
    c:close()
  end
end
