-- A Stripe stand-in that fails on purpose, for the fault-injection spec:
-- `stripe-connect run spec/support/faulty_stripe.lua PORTFILE MODEFILE`.
-- Answers /oauth/token (authorization_code and refresh_token),
-- /oauth/deauthorize and GET /v1/account; how is read from MODEFILE (one
-- word) at each request:
--   ok        a well-formed answer (account acct_faultok for the code)
--   reset     headers promise 100 bytes, a few arrive, then a TCP reset
--   timeout   reads the request and answers nothing for 5 s
--   500       500 with a JSON error        429   429 with a JSON error
--   html      200 text/html                badjson  200 JSON cut short,
--                                          holding a secret-looking token
--   huge      200 with a 9 MiB body (past the client's 8 MiB cap)
--   drip      200 whose JSON body comes one byte every 0.25 s
-- Every answer says Connection: close.  Connections are served side by
-- side (socket.select with timed writes), so a slow answer never delays
-- the next request.  Exits after 60 s without a connection.
package.path = "spec/?.lua;" .. package.path
local socket = require "socket"
local listen = require "support.listen"

local srv = listen(arg[1])
local modefile = assert(arg[2], "usage: faulty_stripe.lua PORTFILE MODEFILE")
srv:settimeout(0)

local function mode()
  local f = io.open(modefile, "rb")
  local m = f and f:read("l") or "ok"
  if f then f:close() end
  return m
end

local function read_request(c)
  c:settimeout(5)
  local line = c:receive("*l")
  if not line then return nil end
  local length = 0
  repeat
    local h = c:receive("*l")
    local n = h and h:lower():match("^content%-length:%s*(%d+)")
    if n then length = tonumber(n) end
  until not h or h == ""
  local body = length > 0 and c:receive(length) or ""
  return line:match("^%u+ (%S+)") or "", body or ""
end

local function answer(status, ctype, body)
  return "HTTP/1.1 " .. status .. "\r\nContent-Type: " .. ctype .. "\r\nContent-Length: " .. #body ..
    "\r\nConnection: close\r\n\r\n" .. body
end

local function ok_body(path, body)
  if path:find("/oauth/token", 1, true) then
    if body:find("grant_type=refresh_token", 1, true) then
      return '{"access_token":"sk_test_faultAT2","refresh_token":"rt_faultRT2","scope":"read_write",' ..
        '"livemode":false,"token_type":"bearer","stripe_user_id":"acct_faultok"}'
    end
    return '{"access_token":"sk_test_faultAT","refresh_token":"rt_faultRT","scope":"read_write","livemode":false,' ..
      '"token_type":"bearer","stripe_publishable_key":"pk_test_fault","stripe_user_id":"acct_faultok"}'
  elseif path:find("/oauth/deauthorize", 1, true) then
    return '{"stripe_user_id":"' .. (body:match("stripe_user_id=([%w_]+)") or "") .. '"}'
  end
  return '{"id":"acct_faultok","object":"account","details_submitted":true,"charges_enabled":true}'
end

-- plan(mode, path, body) -> list of { delay, data | "close" | "rst" }
local function plan(m, path, body)
  local ERR = '{"error":{"type":"api_error","message":"An unknown error occurred"}}'
  if m == "reset" then
    return { { 0, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"acc" }, { 0, "rst" } }
  elseif m == "timeout" then
    return { { 5, "close" } }
  elseif m == "500" then
    return { { 0, answer("500 Internal Server Error", "application/json", ERR) }, { 0, "close" } }
  elseif m == "429" then
    return { { 0, answer("429 Too Many Requests", "application/json",
      '{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}') }, { 0, "close" } }
  elseif m == "html" then
    return { { 0, answer("200 OK", "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>") }, { 0, "close" } }
  elseif m == "badjson" then
    return { { 0, answer("200 OK", "application/json", '{"access_token":"sk_test_leakedINVALID","stripe_user_id":') },
      { 0, "close" } }
  elseif m == "huge" then
    local big = '{"pad":"' .. ("x"):rep(9 * 1024 * 1024) .. '"}'
    return { { 0, answer("200 OK", "application/json", big) }, { 0, "close" } }
  elseif m == "drip" then
    local b = ok_body(path, body)
    local steps = { { 0, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #b ..
      "\r\nConnection: close\r\n\r\n" } }
    for i = 1, #b do steps[#steps + 1] = { 0.25, b:sub(i, i) } end
    steps[#steps + 1] = { 0, "close" }
    return steps
  end
  return { { 0, answer("200 OK", "application/json", ok_body(path, body)) }, { 0, "close" } }
end

local conns = {} -- { c, steps, i, at }
local idle_since = socket.gettime()
while true do
  local now = socket.gettime()
  local wait = 0.5
  for _, k in ipairs(conns) do wait = math.min(wait, math.max(0, k.at - now)) end
  local ready = socket.select({ srv }, nil, wait)
  if ready[1] then
    local c = srv:accept()
    if c then
      idle_since = socket.gettime()
      local path, body = read_request(c)
      if path then
        local steps = plan(mode(), path, body)
        conns[#conns + 1] = { c = c, steps = steps, i = 1, at = socket.gettime() + steps[1][1] }
      else
        c:close()
      end
    end
  end
  now = socket.gettime()
  for n = #conns, 1, -1 do
    local k = conns[n]
    while k and k.at <= now do
      local step = k.steps[k.i][2]
      local done = false
      if step == "close" then
        k.c:close(); done = true
      elseif step == "rst" then
        k.c:setoption("linger", { on = true, timeout = 0 }); k.c:close(); done = true
      else
        k.c:settimeout(10)
        if not k.c:send(step) then k.c:close(); done = true end
      end
      k.i = k.i + 1
      if done or not k.steps[k.i] then
        if not done then k.c:close() end
        table.remove(conns, n)
        k = nil
      else
        k.at = now + k.steps[k.i][1]
      end
    end
  end
  if #conns == 0 and socket.gettime() - idle_since > 60 then break end
end
