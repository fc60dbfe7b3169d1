-- spec/support/rawhttp.lua — requests sent on a connection of their own
-- (Connection: close) whose answers are read later: for specs that keep a
-- request in flight while others run.
--
--   local c = rawhttp.send(port, "GET", "/x" [, cookie])
--   rawhttp.answered(c)        -- has an answer started to arrive? (no wait)
--   local status, raw = rawhttp.read_answer(c)
local socket = require "socket"

local M = {}

function M.send(port, method, path, cookie)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(15)
  assert(c:send(method .. " " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" ..
    (cookie and ("Cookie: " .. cookie .. "\r\n") or "") ..
    (method == "POST" and "Content-Length: 0\r\n" or "") .. "\r\n"))
  return c
end

-- -> status, raw answer (read to the close).
function M.read_answer(c)
  local data = c:receive("*a")
  c:close()
  return tonumber((data or ""):match("^HTTP/1%.1 (%d%d%d)")), data or ""
end

-- Whether an answer has started to arrive on c (without waiting).
function M.answered(c)
  local r = socket.select({ c }, nil, 0)
  return r[1] ~= nil
end

return M
