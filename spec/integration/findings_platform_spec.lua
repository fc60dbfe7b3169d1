-- The review's findings on the platform's flow (issue 13), each test named
-- after its finding, against the real host, the fake Connect and SQLite:
--   finding 4  a webhook hook that raises answers 500 and releases the event
--              id, so Stripe's retry runs the hook again
--   finding 6  /connected shows the success page only to the browser that
--              connected the account; bad input is a 400, never a 500
--   finding 5  flow rows and event ids expire on a timer, without requests
--   finding 11 a token bucket per client address on /connect, the callback
--              and admin sign-in, shared by the workers: 429 + Retry-After
--   finding 8  invalid_client from deauthorize marks the account
--              disconnected only when it means "not connected"
local lu = require "luaunit"
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local webhook = require "stripe_connect.webhook"
local http = require "support.http"
local platform = require "support.platform"
local files = require "support.files"

local p, hook_fail, hook_log

local TestFindingsPlatform = {}

function TestFindingsPlatform.setupClass()
  local dir = files.tmpdir()
  hook_fail, hook_log = dir .. "/fail", dir .. "/hooks.log"
  p = platform.start{ workers = 2, env = { POLICY = "spec/support/failing_hook_policy.lua",
    HOOK_FAIL = hook_fail, HOOK_LOG = hook_log } }
  p.hook_dir = dir
end

function TestFindingsPlatform.teardownClass()
  if p then p:stop(); files.rmdir(p.hook_dir) end
end

local function hook_lines() return files.lines(hook_log) end

local function deliver(body)
  return assert(http.request{ method = "POST", url = p.url .. "/webhooks", body = body,
    headers = { ["Content-Type"] = "application/json",
      ["Stripe-Signature"] = webhook.sign(body, platform.WEBHOOK_SECRET) } })
end

local function account(id)
  local status, body = p:admin("GET", "/admin/accounts/" .. id)
  return status == 200 and body.data or nil
end

local function connected_id(res)
  return (res.headers["location"] or ""):match("/connected%?account=(acct_[%w]+)$")
end

function TestFindingsPlatform.test_finding_4_failing_webhook_hook_answers_500_and_the_retry_runs_it()
  for _, kind in ipairs({ "on_event", "on_deauthorized" }) do
    local body, ev
    if kind == "on_event" then
      body, ev = webhook.event{ type = "customer.created", account = "acct_hookfail" }
    else
      local res = p:connect(http.browser(), { account = "acct_hookdeauth" })
      lu.assertEquals(res.status, 303)
      body, ev = webhook.event{ type = webhook.DEAUTHORIZED, account = "acct_hookdeauth" }
    end
    files.write(hook_fail, "x")
    local first = deliver(body)
    lu.assertEquals(first.status, 500, kind .. ": a hook that raises is not acknowledged")
    lu.assertEquals(cjson.decode(first.body), { error = "processing_failed" }, kind)
    lu.assertNotStrContains(first.body, "downstream", false, kind .. ": the hook's error stays in the log")
    os.remove(hook_fail)
    -- Stripe's retry of the same event (same id, same body) runs the hook
    local retry = deliver(body)
    lu.assertEquals(retry.status, 200, kind .. ": the retry after the hook is fixed")
    lu.assertEquals(cjson.decode(retry.body), { received = true }, kind .. ": processed, not a duplicate")
    local want = kind .. " " .. (kind == "on_event" and ev.id or "acct_hookdeauth")
    local n = 0
    for _, l in ipairs(hook_lines()) do if l == want then n = n + 1 end end
    lu.assertEquals(n, 1, kind .. ": the hook ran once, on the retry")
    -- a third delivery is the duplicate
    lu.assertEquals(cjson.decode(deliver(body).body), { received = true, duplicate = true }, kind)
  end
  lu.assertEquals(account("acct_hookdeauth").status, "disconnected")
end

function TestFindingsPlatform.test_finding_6_connected_page_only_for_the_browser_that_connected()
  local b = http.browser()
  local res = p:connect(b, { account = "acct_findingsix" })
  local id = connected_id(res)
  lu.assertEquals(id, "acct_findingsix")
  local mine = assert(b:get(p.url .. res.headers["location"]))
  lu.assertEquals(mine.status, 200)
  lu.assertStrContains(mine.body, "You're connected")
  lu.assertStrContains(mine.body, "acct_findingsix")
  -- anyone else: no cookie, another browser's binding cookie
  local other = http.browser()
  p:begin(other) -- a binding cookie of its own
  local refused = {
    { "no cookie", assert(http.get(p.url .. "/connected?account=acct_findingsix")) },
    { "another browser", assert(other:get(p.url .. "/connected?account=acct_findingsix")) },
    { "unknown account", assert(other:get(p.url .. "/connected?account=acct_neverseen")) },
    { "unknown account, no cookie", assert(http.get(p.url .. "/connected?account=acct_neverseen")) },
  }
  for _, row in ipairs(refused) do
    lu.assertEquals(row[2].status, 403, row[1])
    lu.assertNotStrContains(row[2].body, "You're connected", false, row[1])
    lu.assertNotStrContains(row[2].body, "acct_", false, row[1])
  end
  -- connected and unknown accounts look alike to another browser
  lu.assertEquals(refused[2][2].body, refused[3][2].body)
  -- disconnected: the same browser no longer sees the success page
  lu.assertEquals((p:admin("POST", "/admin/accounts/acct_findingsix/deauthorize")), 200)
  lu.assertEquals(assert(b:get(p.url .. "/connected?account=acct_findingsix")).status, 403)
end

function TestFindingsPlatform.test_finding_6_connected_page_bad_input_is_a_400()
  local b = http.browser()
  p:connect(b, { account = "acct_findingsixb" })
  for _, q in ipairs({ "", "?account=", "?account=acct_%00", "?account=acct_findingsixb%00",
                       "?account=acct_%FF%FE", "?account=acct_x%22%3E%3Cscript%3E", "?account=cus_123",
                       "?account=acct_findingsixb&account=acct_findingsixb", "?account=" .. ("a"):rep(300),
                       "?account=acct_" .. ("a"):rep(300), "?account[]=acct_findingsixb", "?x=%zz" }) do
    local res = assert(b:get(p.url .. "/connected" .. q))
    lu.assertEquals(res.status, 400, q)
    -- a query that does not decode is refused by the host, before the app (text/plain)
    if q ~= "?x=%zz" then lu.assertStrContains(res.headers["content-type"], "text/html", false, q) end
    lu.assertNotStrContains(res.body, "traceback", true, q)
    lu.assertNotStrContains(res.body, "<script", false, q)
    lu.assertNotStrContains(res.body, ".lua", false, q)
  end
end

function TestFindingsPlatform.test_finding_8_invalid_client_for_a_wrong_key_keeps_the_account_connected()
  lu.assertEquals(p:connect(http.browser(), { account = "acct_findingeight" }).status, 303)
  local saved = { key = p.env.STRIPE_SECRET_KEY, client = p.env.STRIPE_CLIENT_ID }
  local rows = {
    { "wrong secret key", "STRIPE_SECRET_KEY", "sk_test_not_the_platforms_key" },
    { "wrong client id", "STRIPE_CLIENT_ID", "ca_not_the_platforms_client" },
  }
  for _, row in ipairs(rows) do
    p.env[row[2]] = row[3]
    local code, out = p:script("deauthorize", "acct_findingeight")
    p.env.STRIPE_SECRET_KEY, p.env.STRIPE_CLIENT_ID = saved.key, saved.client
    lu.assertEquals(code, 1, row[1] .. ": " .. out)
    lu.assertStrContains(out, "invalid_client", false, row[1])
    lu.assertStrContains(out, "stays connected", false, row[1])
    lu.assertNotStrContains(out, "sk_test_not", false, row[1] .. ": no secret key is echoed")
    lu.assertEquals(account("acct_findingeight").status, "connected", row[1])
  end
  -- the fake still has the connection; the right key disconnects it
  local code, out = p:script("deauthorize", "acct_findingeight")
  lu.assertEquals(code, 0, out)
  lu.assertEquals(account("acct_findingeight").status, "disconnected")
end

function TestFindingsPlatform.test_finding_8_invalid_client_not_connected_marks_the_account_disconnected()
  lu.assertEquals(p:connect(http.browser(), { account = "acct_findingeightb" }).status, 303)
  -- disconnected on Stripe's side without a webhook reaching us
  local res = assert(http.request{ method = "POST", url = p.fake.url .. "/oauth/deauthorize",
    headers = { Authorization = "Bearer " .. platform.SECRET_KEY,
      ["Content-Type"] = "application/x-www-form-urlencoded" },
    body = "client_id=" .. platform.CLIENT_ID .. "&stripe_user_id=acct_findingeightb" })
  lu.assertEquals(res.status, 200, res.body)
  lu.assertEquals(account("acct_findingeightb").status, "connected")
  local status, body = p:admin("POST", "/admin/accounts/acct_findingeightb/deauthorize")
  lu.assertEquals(status, 200, cjson.encode(body))
  lu.assertEquals(body.data.status, "disconnected")
end


-- Finding 5: flow rows stayed 24 h whatever STATE_TTL was, and event ids
-- were expired only from the callback.  A timer per process (core.every on
-- worker 1) sweeps both: a flow row goes STATE_TTL (+ the clock margin,
-- here STATE_TTL too) after its state was issued, an event id past its
-- time, and neither needs a request.
local TestFinding5 = {}

function TestFinding5.test_finding_5_flows_and_event_ids_expire_on_a_timer_without_requests()
  local q = platform.start{ workers = 2, env = { STATE_TTL = "2" } }
  local ok, err = pcall(function()
    lu.assertEquals(q:connect(http.browser(), { account = "acct_findingfive" }).status, 303)
    local s = assert(require("stripe_connect.store").open(q.env.DATABASE))
    local function count(sql)
      return assert(s:run{ { sql } })[1][1].n
    end
    lu.assertEquals(count("SELECT COUNT(*) AS n FROM flows"), 1)
    local now = os.time()
    assert(s:run{ { "INSERT INTO events (id, expires_at) VALUES ('evt_stale', ?)", now - 1 },
                  { "INSERT INTO events (id, expires_at) VALUES ('evt_live', ?)", now + 3600 } })
    local requests = select(2, q.platform:log_text():gsub("method=", ""))
    local deadline = os.time() + 30
    while os.time() < deadline and (count("SELECT COUNT(*) AS n FROM flows") > 0
        or count("SELECT COUNT(*) AS n FROM events WHERE id = 'evt_stale'") > 0) do
      core.sleep(0.2)
    end
    lu.assertEquals(count("SELECT COUNT(*) AS n FROM flows"), 0, "the flow row is swept")
    lu.assertEquals(count("SELECT COUNT(*) AS n FROM events WHERE id = 'evt_stale'"), 0, "the stale event id is swept")
    lu.assertEquals(count("SELECT COUNT(*) AS n FROM events WHERE id = 'evt_live'"), 1, "a live event id stays")
    lu.assertEquals(select(2, q.platform:log_text():gsub("method=", "")), requests, "no request came meanwhile")
    lu.assertEquals(count("SELECT COUNT(*) AS n FROM accounts WHERE id = 'acct_findingfive'"), 1, "accounts stay")
    s:close()
  end)
  q:stop()
  if not ok then error(err, 0) end
end

-- One request on a connection of its own (Connection: close), so SO_REUSEPORT
-- spreads them over the workers -> status, raw answer.
local function fresh_request(port, method, path, body)
  local socket = require "socket"
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(15)
  assert(c:send(method .. " " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" ..
    (body and ("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " .. #body .. "\r\n") or "") ..
    "\r\n" .. (body or "")))
  local data = c:receive("*a") or ""
  c:close()
  return tonumber(data:match("^HTTP/1%.1 (%d%d%d)")), data
end

local TestFinding11 = {}

function TestFinding11.test_finding_11_rate_limit_per_address_shared_by_workers()
  local q = platform.start{ workers = 2, env = { RATE_LIMIT = "4/1" } }
  local ok, err = pcall(function()
    -- /connect and the callback share the address's flow bucket: 4 in all
    -- over both workers (16 fresh connections; per-worker buckets would let 8 in)
    local allowed, limited = {}, 0
    for i = 1, 16 do
      local path = i % 2 == 1 and "/connect" or "/oauth/callback?code=x&state=y"
      local status, raw = fresh_request(q.port, "GET", path)
      if status == 429 then
        limited = limited + 1
        local retry = tonumber(raw:match("\r\nRetry%-After: (%d+)\r\n"))
        lu.assertNotNil(retry, raw)
        lu.assertTrue(retry >= 1 and retry <= 60, raw)
        lu.assertStrContains(raw, "Too many requests")
        lu.assertStrContains(raw, "Cache-Control: no-store")
      else
        allowed[#allowed + 1] = status
      end
    end
    lu.assertEquals(allowed, { 302, 403, 302, 403 })
    lu.assertEquals(limited, 12)
    local log = q.platform:log_text()
    lu.assertStrContains(log, 'worker=1 method=GET path="/')
    lu.assertStrContains(log, 'worker=2 method=GET path="/')
    -- other routes are not limited; admin sign-in has its own bucket
    lu.assertEquals((fresh_request(q.port, "GET", "/")), 200)
    lu.assertEquals((fresh_request(q.port, "GET", "/healthz")), 200)
    local login = {}
    for i = 1, 5 do login[i] = (fresh_request(q.port, "POST", "/admin/login", "token=wrong")) end
    lu.assertEquals(login, { 401, 401, 401, 401, 429 })
    -- the Bearer API is not sign-in
    lu.assertEquals((q:admin("GET", "/admin/accounts")), 200)
    local _, metrics = fresh_request(q.port, "GET", "/metrics")
    lu.assertStrContains(metrics, 'stripe_connect_rate_limited_total{bucket="flow"} 12')
    lu.assertStrContains(metrics, 'stripe_connect_rate_limited_total{bucket="admin"} 1')
  end)
  q:stop()
  if not ok then error(err, 0) end
end

function TestFinding11.test_finding_11_rate_limit_off()
  local q = platform.start{ env = { RATE_LIMIT = "off" } }
  local ok, err = pcall(function()
    for i = 1, 40 do lu.assertEquals((fresh_request(q.port, "GET", "/connect")), 302, "request " .. i) end
  end)
  q:stop()
  if not ok then error(err, 0) end
end

return { TestFindingsPlatform = TestFindingsPlatform, TestFinding5 = TestFinding5, TestFinding11 = TestFinding11 }
