-- An HTTP upstream on a raw socket (LuaSocket) for the nginx client's specs
-- (stripe_connect.ngx_http): `stripe-connect run spec/support/ngx_http_upstream.lua PORTFILE`.
-- One connection at a time; on it, requests until the client closes or 1 s
-- passes idle.  By request path:
--   /length   Content-Length body           /chunked  chunked body with a trailer
--   /close    no length: the body runs to the close
--   /big      Content-Length 5000           /slow     answers nothing for 3 s
--   /count    "conn=N req=M method=… body=… host=…": the connection's number
--             (from 1), the request's number on it, what was sent
--   /drop     the first time: closes without answering (later: as /count)
-- Writes its port to PORTFILE once listening; exits after 60 s without a connection.
package.path = "spec/?.lua;" .. package.path
local listen = require "support.listen"
local socket = require "socket"

local srv = listen(arg[1])
local conns, dropped = 0, false

local function answer(c, status, headers, body)
  c:send("HTTP/1.1 " .. status .. "\r\n" .. headers .. "\r\n" .. (body or ""))
end

while true do
  local c = srv:accept()
  if not c then break end
  conns = conns + 1
  local nreq = 0
  c:settimeout(1)
  while true do
    local line = c:receive("*l")
    if not line then break end
    nreq = nreq + 1
    local headers = {}
    repeat
      local h = c:receive("*l")
      local k, v = (h or ""):match("^([^:]+):%s*(.*)$")
      if k then headers[k:lower()] = v end
    until not h or h == ""
    local body = ""
    local n = tonumber(headers["content-length"] or "0")
    if n and n > 0 then body = c:receive(n) or "" end
    local method, path = line:match("^(%u+) (%S+)")
    if path == "/length" then
      answer(c, "200 OK", "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello")
    elseif path == "/chunked" then
      answer(c, "201 Created", "Transfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
        "3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n")
    elseif path == "/close" then
      answer(c, "200 OK", "Connection: close\r\n", "until the close")
      break
    elseif path == "/big" then
      answer(c, "200 OK", "Content-Length: 5000\r\n", ("x"):rep(5000))
    elseif path == "/slow" then
      socket.sleep(3)
      break
    elseif path == "/drop" and not dropped then
      dropped = true
      break
    else
      local text = string.format("conn=%d req=%d method=%s body=%s host=%s", conns, nreq, method, body,
        headers.host or "")
      answer(c, "200 OK", "Content-Length: " .. #text .. "\r\n", text)
    end
  end
  c:close()
end
