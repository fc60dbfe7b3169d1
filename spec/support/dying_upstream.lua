-- An HTTP upstream whose kept-alive connection dies at the worst moment, for
-- the at-most-once specs: `stripe-connect run spec/support/dying_upstream.lua
-- PORTFILE LOGFILE`.  Serves one connection at a time, several requests on
-- each: a path starting /ok answers 200 and keeps the connection; any other
-- path is read in full (body included), logged, and the connection is closed
-- without an answer, as a server that crashed after acting on it would.
-- Appends each request's path to LOGFILE.  Writes its port to PORTFILE once
-- listening; exits after 60 s without a connection.
package.path = "spec/?.lua;" .. package.path
local listen = require "support.listen"

local srv = listen(arg[1])
local logfile = assert(arg[2], "usage: dying_upstream.lua PORTFILE LOGFILE")

local function log(path)
  local out = assert(io.open(logfile, "a"))
  out:write(path, "\n")
  out:close()
end

-- Reads one request from c; answers its path, or nil when the client left.
local function read_request(c)
  local line = c:receive("*l")
  if not line or line == "" then return nil end
  local length = 0
  repeat
    local h = c:receive("*l")
    local n = h and h:lower():match("^content%-length:%s*(%d+)")
    if n then length = tonumber(n) end
  until not h or h == ""
  if length > 0 then c:receive(length) end
  return line:match("^%u+ (%S+)") or ""
end

while true do
  local c = srv:accept()
  if not c then break end
  c:settimeout(5)
  while true do
    local path = read_request(c)
    if not path then break end
    log(path)
    if path:sub(1, 3) == "/ok" then
      c:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
    else
      break
    end
  end
  c:close()
end
