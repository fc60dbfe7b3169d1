-- scripts/bench/soak_wrk.lua — the wrk script of `make soak` (wrk 4, LuaJIT):
-- a mix of the platform's routes on every connection, configured through the
-- environment scripts/bench/soak.lua sets:
--
--   SOAK_MIX          the routes in turn, one letter each: c = GET /connect,
--                     b = GET /oauth/callback (a fresh state each), w = POST
--                     /webhooks (a fresh signed event each), a = GET
--                     /admin/accounts (Bearer), i = GET /admin/accounts/{id}
--   SOAK_STATES       lines "STATE BINDING"   (scripts/bench/fixtures.lua states)
--   SOAK_EVENTS       lines "SIGNATURE<TAB>BODY" (fixtures.lua webhooks)
--   SOAK_THREADS      wrk's -t: thread N of T takes lines N, N+T, … of each file
--   SOAK_ADMIN_TOKEN  the platform's ADMIN_TOKEN
--   SOAK_ACCOUNT      the id the `i` requests ask for
--
-- A thread that has used all of its states or events sends GET /connect in
-- their place (counted as `exhausted`), so no request is a replay.  Every
-- answer is classified by what it is: 302 to the authorize page (connect),
-- 303 to /connected (callback), 200 {"received":true} (webhook; `duplicate`
-- counted apart), 200 {"data":…} (admin); anything else is `unexpected`.
-- done() prints one line for soak.lua:
--   soak: requests=N connect=N callback=N webhook=N admin=N duplicate=N
--         unexpected=N exhausted=N sent_callback=N sent_webhook=N
--         errors_connect=N errors_read=N errors_write=N errors_timeout=N
--         errors_status=N p50_us=N p99_us=N statuses=CODE:N,…
local nthreads = tonumber(os.getenv("SOAK_THREADS") or "1")
local mix = os.getenv("SOAK_MIX") or "cbwcbwcbwa"

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  threads[#threads + 1] = thread
end

-- What done() reads back with thread:get.
counts = { connect = 0, callback = 0, webhook = 0, admin = 0, duplicate = 0, unexpected = 0,
           exhausted = 0, sent_callback = 0, sent_webhook = 0 }
statuses = {}
local c = counts

local states, events = {}, {}
local si, ei = 0, 0
local slot = 0
local connect_req, admin_req, account_req

local function load(path, into)
  if not path then return end
  local k = 0
  for line in io.lines(path) do
    if k % nthreads == (id - 1) then into[#into + 1] = line end
    k = k + 1
  end
end

function init()
  load(os.getenv("SOAK_STATES"), states)
  load(os.getenv("SOAK_EVENTS"), events)
  local auth = { Authorization = "Bearer " .. (os.getenv("SOAK_ADMIN_TOKEN") or "") }
  connect_req = wrk.format("GET", "/connect")
  admin_req = wrk.format("GET", "/admin/accounts", auth)
  account_req = wrk.format("GET", "/admin/accounts/" .. (os.getenv("SOAK_ACCOUNT") or "acct_none"), auth)
end

local callback_headers = { Cookie = "" }
local webhook_headers = { ["Content-Type"] = "application/json", ["Stripe-Signature"] = "" }

function request()
  slot = slot % #mix + 1
  local kind = mix:sub(slot, slot)
  if kind == "b" then
    si = si + 1
    local line = states[si]
    if line then
      c.sent_callback = c.sent_callback + 1
      local st, binding = line:match("^(%S+) (%S+)$")
      callback_headers.Cookie = "sc_bind=" .. binding
      return wrk.format("GET", "/oauth/callback?code=ac_soak&state=" .. st, callback_headers)
    end
    c.exhausted = c.exhausted + 1
  elseif kind == "w" then
    ei = ei + 1
    local line = events[ei]
    if line then
      c.sent_webhook = c.sent_webhook + 1
      local sig, body = line:match("^([^\t]+)\t(.*)$")
      webhook_headers["Stripe-Signature"] = sig
      return wrk.format("POST", "/webhooks", webhook_headers, body)
    end
    c.exhausted = c.exhausted + 1
  elseif kind == "a" then
    return admin_req
  elseif kind == "i" then
    return account_req
  end
  return connect_req
end

function response(status, headers, body)
  local kind
  if status == 302 and (headers["Location"] or ""):find("/oauth/authorize", 1, true) then
    kind = "connect"
  elseif status == 303 and (headers["Location"] or ""):find("/connected", 1, true) then
    kind = "callback"
  elseif status == 200 and body:find('"received":true', 1, true) then
    kind = "webhook"
    if body:find('"duplicate":true', 1, true) then c.duplicate = c.duplicate + 1 end
  elseif status == 200 and body:sub(1, 8) == '{"data":' then
    kind = "admin"
  end
  if kind then
    c[kind] = c[kind] + 1
  else
    c.unexpected = c.unexpected + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency)
  local total = {}
  for k in pairs(counts) do total[k] = 0 end
  local codes = {}
  for _, t in ipairs(threads) do
    local tc = t:get("counts")
    for k in pairs(total) do total[k] = total[k] + tc[k] end
    for code, n in pairs(t:get("statuses")) do codes[code] = (codes[code] or 0) + n end
  end
  local list = {}
  for code, n in pairs(codes) do list[#list + 1] = code .. ":" .. n end
  table.sort(list)
  local e = summary.errors
  io.write(string.format("soak: requests=%d connect=%d callback=%d webhook=%d admin=%d duplicate=%d " ..
    "unexpected=%d exhausted=%d sent_callback=%d sent_webhook=%d errors_connect=%d errors_read=%d " ..
    "errors_write=%d errors_timeout=%d errors_status=%d p50_us=%d p99_us=%d statuses=%s\n",
    summary.requests, total.connect, total.callback, total.webhook, total.admin, total.duplicate,
    total.unexpected, total.exhausted, total.sent_callback, total.sent_webhook, e.connect, e.read,
    e.write, e.timeout, e.status, latency:percentile(50), latency:percentile(99),
    #list > 0 and table.concat(list, ",") or "-"))
end
