-- An HTTP proxy in front of the fake Connect whose connection dies after the
-- work is done, for the retry specs: `stripe-connect run
-- spec/support/dropping_proxy.lua PORTFILE UPSTREAM_URL DROPS`.  Forwards
-- each request to UPSTREAM_URL; for the first DROPS requests it closes the
-- client's connection without an answer once the upstream has answered (the
-- server acted, the answer is lost), later ones get the upstream's answer.
-- One connection at a time, several requests on each.  Writes its port to
-- PORTFILE once listening; exits after 60 s without a connection.
package.path = "spec/?.lua;" .. package.path
local core = require "stripe_connect.core"
local listen = require "support.listen"

local srv = listen(arg[1])
local upstream = assert(arg[2], "usage: dropping_proxy.lua PORTFILE UPSTREAM_URL DROPS")
local drops = tonumber(arg[3] or "1")

local SKIP = { host = true, ["content-length"] = true, connection = true, expect = true }

local function read_request(c)
  local line = c:receive("*l")
  if not line or line == "" then return nil end
  local method, target = line:match("^(%u+) (%S+)")
  local headers, length = {}, 0
  while true do
    local h = c:receive("*l")
    if not h or h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then
      if name:lower() == "content-length" then length = tonumber(value) end
      if not SKIP[name:lower()] then headers[name] = value end
    end
  end
  local body = length > 0 and c:receive(length) or nil
  return { method = method, url = upstream .. target, headers = headers, body = body, timeout = 10 }
end

while true do
  local c = srv:accept()
  if not c then break end
  c:settimeout(5)
  while true do
    local r = read_request(c)
    if not r then break end
    local res = core.http_request(r)
    if drops > 0 or not res then
      drops = drops - 1
      break
    end
    c:send(string.format("HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", res.status,
      res.headers["content-type"] or "application/json", #res.body, res.body))
  end
  c:close()
end
