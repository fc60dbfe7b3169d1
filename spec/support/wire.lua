-- spec/support/wire.lua — requests on raw loopback sockets, one connection
-- each (Connection: close), sent now and read later: what specs use to have
-- many requests in flight at once against a server.
--
--   local wire = require "support.wire"
--   local c = wire.send(port, "GET", "/path", { Cookie = "a=b" })   -- body optional
--   local status, raw = wire.read_answer(c)    -- blocks until the server closes
--   wire.answered(c)                           -- has an answer started to arrive?
--   local got = wire.collect(conns, want, timeout)
--     -- reads without blocking until `want` of conns are complete (or the
--     -- deadline passes); -> { [c] = { status =, raw = } } for the complete ones
local socket = require "socket"

local M = {}

-- send(port, method, path [, headers [, body]]) -> the connected socket.
-- A POST without a body sends Content-Length: 0.
function M.send(port, method, path, headers, body)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(15)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body or method == "POST" then lines[#lines + 1] = "Content-Length: " .. #(body or "") end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
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

-- collect(conns, want, timeout) -> done: { [c] = { status =, raw = } } for
-- each connection whose answer arrived whole (the server closed it), read
-- without blocking until `want` of them are done or `timeout` seconds pass.
-- Done connections are closed; the others are left open.  A connection
-- reset counts as done, with what arrived before the reset.
function M.collect(conns, want, timeout)
  local done, n, buf, open = {}, 0, {}, {}
  for _, c in ipairs(conns) do buf[c] = ""; open[#open + 1] = c; c:settimeout(0) end
  local deadline = socket.gettime() + (timeout or 20)
  while n < want and #open > 0 and socket.gettime() < deadline do
    local ready = socket.select(open, nil, math.max(0, math.min(0.5, deadline - socket.gettime())))
    for _, c in ipairs(ready) do
      local data, err, partial = c:receive("*a")
      buf[c] = buf[c] .. (data or partial or "")
      if data or err ~= "timeout" then -- the close, or a reset (the server was killed)
        done[c] = { status = tonumber(buf[c]:match("^HTTP/1%.1 (%d%d%d)")), raw = buf[c] }
        n = n + 1
        c:close()
        for k, o in ipairs(open) do if o == c then table.remove(open, k) break end end
      end
    end
  end
  return done, n
end

return M
