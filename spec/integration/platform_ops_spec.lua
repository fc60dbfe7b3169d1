-- What an operator scrapes and probes, on a real `serve` (issue 14, item 3):
-- /healthz and /ready, /metrics with a # HELP and # TYPE line per family and
-- every declared series from the start, the webhook's deauthorizations
-- counted as source="webhook", and --metrics-listen serving /metrics on an
-- address of its own (and no longer on the app's port).
local lu = require "luaunit"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"

local TestPlatformOps = {}

local value = platform.metric_value

function TestPlatformOps.test_probes_metrics_and_webhook_deauthorizations()
  local p = platform.start{}
  local ok, err = pcall(function()
    lu.assertEquals(assert(http.get(p.url .. "/healthz")).body, "ok\n")
    local ready = assert(http.get(p.url .. "/ready"))
    lu.assertEquals(ready.status, 200)
    lu.assertEquals(ready.body, "ready\n")
    local text = assert(http.get(p.url .. "/metrics")).body
    for _, name in ipairs({ "stripe_connect_connect_total", "stripe_connect_deauthorizations_total",
        "stripe_connect_webhooks_total", "stripe_connect_refreshes_total", "stripe_connect_token_calls_total",
        "stripe_connect_accounts" }) do
      lu.assertStrMatches(text, ".*# HELP " .. name .. " [^\n]+\n# TYPE " .. name .. " %a+\n.*", nil, nil, name)
    end
    lu.assertEquals(value(text, 'stripe_connect_deauthorizations_total{source="webhook"}'), 0)
    -- the user disconnects on Stripe: the signed webhook marks it and counts it
    p:connect(http.browser(), { account = "acct_opswebhook" })
    local res = assert(http.post_form(p.fake.url .. "/__fake/accounts/acct_opswebhook/disconnect", {}))
    lu.assertEquals(res.status, 200, res.body)
    text = assert(http.get(p.url .. "/metrics")).body
    lu.assertEquals(value(text, 'stripe_connect_deauthorizations_total{source="webhook"}'), 1)
    lu.assertEquals(value(text, 'stripe_connect_deauthorizations_total{source="admin"}'), 0)
    lu.assertEquals(value(text, 'stripe_connect_accounts{status="disconnected"}'), 1)
  end)
  p:stop()
  if not ok then error(err, 0) end
end

function TestPlatformOps.test_metrics_listen_serves_metrics_apart()
  local mport = server.free_port()
  local p = platform.start{ workers = 2, args = { "--metrics-listen", "127.0.0.1:" .. mport } }
  local ok, err = pcall(function()
    local murl = "http://127.0.0.1:" .. mport
    lu.assertStrContains(p.platform:log_text(), "metrics on " .. murl .. "/metrics")
    lu.assertEquals(assert(http.get(p.url .. "/connect")).status, 302)
    local rows = {
      { "the app's port: no /metrics", p.url .. "/metrics", 404 },
      { "the app's port still probes", p.url .. "/healthz", 200 },
      { "metrics port: /metrics", murl .. "/metrics", 200 },
      { "metrics port: /ready", murl .. "/ready", 200 },
      { "metrics port: /healthz", murl .. "/healthz", 200 },
      { "metrics port: nothing else", murl .. "/connect", 404 },
      { "metrics port: no admin", murl .. "/admin", 404 },
    }
    for _, row in ipairs(rows) do
      local res = assert(http.request{ method = "GET", url = row[2], fresh_connect = true })
      lu.assertEquals(res.status, row[3], row[1])
      if row[2] == murl .. "/metrics" then
        lu.assertStrContains(res.body, "# TYPE stripe_connect_connect_total counter\n")
        lu.assertTrue(value(res.body, "stripe_connect_connect_total") >= 1)
      end
    end
  end)
  p:stop()
  if not ok then error(err, 0) end
  -- a bad address is a usage error, exit 2
  local out = io.popen("build/stripe-connect serve scripts/platform.lua --metrics-listen nope 2>&1; echo rc=$?")
  local text = out:read("a")
  out:close()
  lu.assertStrContains(text, "bad --metrics-listen 'nope' (want HOST:PORT)")
  lu.assertStrContains(text, "rc=2")
end

return { TestPlatformOps = TestPlatformOps }
