-- spec/support/raw_http.lua — raw HTTP/1.1 over a LuaSocket connection, for
-- specs that send what a client library would refuse to (framing attacks).
--
--   local raw = require "support.raw_http"
--   local status, headers, body, c = raw.exchange(port, bytes)   -- one response
--   raw.read_response(c)   -- the next one: status, headers (lower-cased), body | nil, err
--   raw.closed(c)          -- the server closed the connection (nothing more came)
local socket = require "socket"

local M = {}

function M.connect(port)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(5)
  return c
end

function M.read_response(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
  local headers = {}
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    headers[name:lower()] = value
  end
  local body = ""
  local n = tonumber(headers["content-length"] or "0")
  if n > 0 then body = assert(c:receive(n)) end
  return status, headers, body
end

function M.exchange(port, data)
  local c = M.connect(port)
  c:send(data)
  local status, headers, body = M.read_response(c)
  return status, headers, body, c
end

function M.closed(c)
  local data, err, partial = c:receive(1)
  return data == nil and err == "closed" and partial == ""
end

return M
