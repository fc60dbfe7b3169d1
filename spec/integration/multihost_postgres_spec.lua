-- Two hosts (`stripe-connect serve scripts/platform.lua` on two ports, the
-- same secrets and the same PostgreSQL DATABASE) behind a real nginx
-- round-robin load balancer: a flow moves between hosts, twin callbacks
-- and twin webhooks hitting both hosts at once are spent once, the admin
-- and the accounts gauge agree, and a PostgreSQL outage answers 503s and
-- heals without a restart.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local webhook = require "stripe_connect.webhook"
local platform = require "support.platform"
local postgres = require "support.postgres"
local http = require "support.http"
local wire = require "support.wire"

local T = {}

local pg, p
function T.setupClass()
  pg = postgres.start()
  p = platform.start{ hosts = 2, database = pg:fresh_url(), workers = 2 }
end
function T.teardownClass()
  if p then p:stop() end
  if pg then pg:stop() end
end

local function on_host(url, i)
  return (url:gsub("^https?://[^/]+", p.hosts[i].url))
end

local function path_of(url) return url:match("^https?://[^/]+(/.*)$") end

-- A flow up to its callback URL, started on host i: -> callback URL, browser.
local function prepared(i, account)
  local b = http.browser()
  local res = assert(b:get(p.hosts[i].url .. "/connect"))
  lu.assertEquals(res.status, 302)
  local loc = res.headers["location"]
  return p:decide({ url = loc, args = platform.parse_query(loc) }, "approve", account), b
end

local function metric(i, series)
  local res = assert(http.get(p.hosts[i].url .. "/metrics"))
  lu.assertEquals(res.status, 200)
  local v = res.body:match("\n" .. series:gsub("%p", "%%%0") .. " (%d+)")
    or res.body:match("^" .. series:gsub("%p", "%%%0") .. " (%d+)")
  return tonumber(v) or 0
end

local function admin_list(i)
  local res = assert(http.request{ method = "GET", url = p.hosts[i].url .. "/admin/accounts",
    headers = { Authorization = "Bearer " .. platform.ADMIN_TOKEN } })
  return res.status, cjson.decode(res.body)
end

function T.test_1_a_flow_started_on_one_host_completes_on_the_other()
  local before = p:token_calls()
  local cb, b = prepared(1, "acct_1MultiHostOne00")
  local res = assert(b:get(on_host(cb, 2)))
  lu.assertEquals(res.status, 303, res.body)
  lu.assertStrContains(res.headers["location"], "acct_1MultiHostOne00")
  lu.assertEquals(p:token_calls(), before + 1)
  -- Through the load balancer (round robin: /connect and the callback land
  -- on different hosts).
  local lb = p:connect(http.browser(), { account = "acct_1MultiHostLB0000" })
  lu.assertEquals(lb.status, 303, lb.body)
  lu.assertEquals(p:token_calls(), before + 2)
  -- The admin lists the same accounts on both hosts.
  local s1, l1 = admin_list(1)
  local s2, l2 = admin_list(2)
  lu.assertEquals(s1, 200)
  lu.assertEquals(s2, 200)
  lu.assertEquals(l1, l2)
  local found = false
  for _, a in ipairs(l1.data) do found = found or a.id == "acct_1MultiHostOne00" end
  lu.assertTrue(found)
  -- /metrics: counters are per host (the callback ran on host 2 only), the
  -- accounts gauge comes from the shared database.
  local ok = 'stripe_connect_callbacks_total{outcome="connected",reason=""}'
  lu.assertEquals(metric(1, ok) + metric(2, ok), 2)
  lu.assertTrue(metric(2, ok) >= 1)
  local gauge = 'stripe_connect_accounts{status="connected"}'
  lu.assertEquals(metric(1, gauge), metric(2, gauge))
  lu.assertTrue(metric(1, gauge) >= 1)
end

function T.test_2_the_same_callback_on_both_hosts_at_once_spends_the_code_once()
  for round = 1, 5 do
    local before = p:token_calls()
    local cb, b = prepared(1 + round % 2, "acct_1MultiHostTwin" .. round)
    local path, cookie = path_of(cb), b:cookie_header()
    local c1 = wire.send(p.hosts[1].port, "GET", path, { Cookie = cookie })
    local c2 = wire.send(p.hosts[2].port, "GET", path, { Cookie = cookie })
    local st1, raw1 = wire.read_answer(c1)
    local st2, raw2 = wire.read_answer(c2)
    lu.assertEquals(p:token_calls(), before + 1, "round " .. round)
    -- The first claimant connects; the twin answers the recorded outcome
    -- (303) or, while the first still works, "still connecting" (503).
    local connected = 0
    for _, st in ipairs({ st1, st2 }) do
      lu.assertTrue(st == 303 or st == 503, "round " .. round .. ": " .. tostring(st) .. "\n" .. raw1 .. raw2)
      if st == 303 then connected = connected + 1 end
    end
    lu.assertTrue(connected >= 1, raw1 .. raw2)
  end
end

function T.test_3_a_webhook_on_both_hosts_at_once_is_processed_once()
  local cb, b = prepared(1, "acct_1MultiHostHook00")
  lu.assertEquals(assert(b:get(cb)).status, 303)
  for round = 1, 5 do
    local body = webhook.event{ type = webhook.DEAUTHORIZED, account = "acct_1MultiHostHook00",
      id = "evt_multihost_" .. round }
    local processed = 'stripe_connect_webhooks_total{result="processed"}'
    local dup = 'stripe_connect_webhooks_total{result="duplicate"}'
    local p0 = metric(1, processed) + metric(2, processed)
    local processing = 'stripe_connect_webhooks_total{result="processing"}'
    local d0 = metric(1, dup) + metric(2, dup) + metric(1, processing) + metric(2, processing)
    local socket = require "socket"
    local conns = {}
    for i = 1, 2 do
      local c = assert(socket.connect("127.0.0.1", p.hosts[i].port))
      c:settimeout(15)
      assert(c:send("POST /webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" ..
        "Content-Type: application/json\r\nStripe-Signature: " .. webhook.sign(body, platform.WEBHOOK_SECRET) ..
        "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body))
      conns[i] = c
    end
    -- One copy is processed; the other is a duplicate (it came after) or
    -- 409 processing (it came while the first held its claim).
    local answers = {}
    for i = 1, 2 do
      local st, raw = wire.read_answer(conns[i])
      answers[i] = { st, cjson.decode(raw:match("\r\n\r\n(.*)$")) }
    end
    if not (answers[1][1] == 200 and answers[1][2].duplicate == nil) then answers = { answers[2], answers[1] } end
    lu.assertEquals(answers[1], { 200, { received = true } })
    local st, other = answers[2][1], answers[2][2]
    lu.assertTrue((st == 200 and other.duplicate == true) or (st == 409 and other.error == "processing"),
      st .. " " .. cjson.encode(other))
    lu.assertEquals(metric(1, processed) + metric(2, processed), p0 + 1)
    lu.assertEquals(metric(1, dup) + metric(2, dup) + metric(1, processing) + metric(2, processing), d0 + 1)
  end
  local s1, l1 = admin_list(1)
  lu.assertEquals(s1, 200)
  for _, a in ipairs(l1.data) do
    if a.id == "acct_1MultiHostHook00" then lu.assertEquals(a.status, "disconnected") end
  end
end

function T.test_4_a_postgres_outage_answers_503_and_heals_without_a_restart()
  local cb, b = prepared(2, "acct_1MultiHostDown00")
  pg:halt()
  -- Through the load balancer and on each host: the callback, the
  -- webhooks (JSON, so Stripe retries), the admin API, the health check.
  local res = assert(b:get(cb))
  lu.assertEquals(res.status, 503)
  lu.assertStrContains(res.headers["content-type"], "text/html")
  local body = webhook.event{ type = webhook.DEAUTHORIZED, account = "acct_1MultiHostDown00", id = "evt_multihost_down" }
  for i = 1, 2 do
    local w = assert(http.request{ method = "POST", url = p.hosts[i].url .. "/webhooks", body = body,
      headers = { ["Content-Type"] = "application/json",
        ["Stripe-Signature"] = webhook.sign(body, platform.WEBHOOK_SECRET) } })
    lu.assertEquals(w.status, 503)
    lu.assertStrContains(w.headers["content-type"], "application/json")
    lu.assertEquals(cjson.decode(w.body).error, "store_unavailable")
    local st, l = admin_list(i)
    lu.assertEquals(st, 503)
    lu.assertEquals(l.error.reason, "store_unavailable")
    lu.assertEquals(assert(http.get(p.hosts[i].url .. "/ready")).status, 503)
    lu.assertNotStrContains(w.body .. assert(http.get(p.hosts[i].url .. "/ready")).body, postgres.PASSWORD)
  end
  pg:resume()
  for i = 1, 2 do
    lu.assertEquals(assert(http.get(p.hosts[i].url .. "/ready")).status, 200)
  end
  -- The callback that met the outage claimed nothing: sent again, it connects.
  local before = p:token_calls()
  res = assert(b:get(cb))
  lu.assertEquals(res.status, 303, res.body)
  lu.assertEquals(p:token_calls(), before + 1)
  local st1, l1 = admin_list(1)
  local st2, l2 = admin_list(2)
  lu.assertEquals({ st1, st2 }, { 200, 200 })
  lu.assertEquals(l1, l2)
end

return { TestMultiHostPostgres = T }
