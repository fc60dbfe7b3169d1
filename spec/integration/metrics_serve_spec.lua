-- Metrics in process memory under `serve --workers 4`: requests spread over
-- the workers (a new connection each, so SO_REUSEPORT spreads them) add up
-- in /metrics on whichever worker answers it; and the core registry's cap,
-- in a process of its own.
local lu = require "luaunit"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"
local webhook = require "stripe_connect.webhook"

local N = 120 -- requests per route

local TestMetricsServe = {}
local p

function TestMetricsServe.setupClass()
  p = platform.start{ workers = 4, env = { DATABASE = "memory:" } }
end

function TestMetricsServe.teardownClass()
  if p then p:stop() end
end

local function fresh_get(path)
  return assert(http.request{ method = "GET", url = p.url .. path, fresh_connect = true })
end

-- The value of one exposition line `series value`.
local value = platform.metric_value

function TestMetricsServe.test_counters_add_up_across_workers()
  for _ = 1, N do lu.assertEquals(fresh_get("/connect").status, 302) end
  for i = 1, N do
    local body = webhook.event{ type = "customer.created", account = "acct_m" .. i }
    local res = assert(http.request{ method = "POST", url = p.url .. "/webhooks", body = body, fresh_connect = true,
      headers = { ["Stripe-Signature"] = webhook.sign(body, platform.WEBHOOK_SECRET),
                  ["Content-Type"] = "application/json" } })
    lu.assertEquals(res.status, 200, res.body)
  end
  for _ = 1, N do lu.assertEquals(fresh_get("/oauth/callback").status, 403) end

  -- The access log shows the requests were answered by several workers.
  local workers = {}
  for w in p.platform:log_text():gmatch("worker=(%d+) method=GET path=\"/connect\"") do workers[w] = true end
  local n = 0
  for _ in pairs(workers) do n = n + 1 end
  lu.assertTrue(n >= 2, "only " .. n .. " worker(s) answered /connect")

  -- Whichever worker answers /metrics, the totals are the number sent.
  for _ = 1, 4 do
    local res = fresh_get("/metrics")
    lu.assertEquals(res.status, 200)
    local text = res.body
    lu.assertStrContains(text, "# TYPE stripe_connect_connect_total counter\n")
    lu.assertEquals(value(text, "stripe_connect_connect_total"), N)
    lu.assertEquals(value(text, 'stripe_connect_webhooks_total{result="processed"}'), N)
    lu.assertEquals(value(text, 'stripe_connect_callbacks_total{outcome="rejected",reason="missing_state"}'), N)
    lu.assertStrContains(text, "# TYPE stripe_connect_request_duration_seconds histogram\n")
    lu.assertEquals(value(text, 'stripe_connect_request_duration_seconds_count{route="/connect"}'), N)
    lu.assertEquals(value(text, 'stripe_connect_request_duration_seconds_bucket{route="/connect",le="+Inf"}'), N)
    lu.assertEquals(value(text, 'stripe_connect_request_duration_seconds_count{route="/webhooks"}'), N)
    lu.assertEquals(value(text, 'stripe_connect_request_duration_seconds_count{route="/oauth/callback"}'), N)
    lu.assertTrue(value(text, 'stripe_connect_request_duration_seconds_sum{route="/connect"}') > 0)
    lu.assertNotNil(value(text, 'stripe_connect_accounts{status="connected"}'))
  end
end

-- The cap: beyond 1024 series the core raises, in its own process (the
-- registry of this one is shared with the other specs).
function TestMetricsServe.test_core_cap_in_a_process_of_its_own()
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write([[
local core = require "stripe_connect.core"
for i = 1, 64 do core.metrics_observe("cap_seconds", "r=\"" .. i .. "\"", 0.1) end
print(pcall(core.metrics_observe, "cap_seconds", "r=\"65\"", 0.1))
for i = 1, 1024 - 64 do core.metrics_add("cap_" .. i .. "_total") end
core.metrics_add("cap_1_total", 5)
print(pcall(core.metrics_add, "cap_over_total"))
print(core.metrics_snapshot().counters.cap_1_total)
]])
  f:close()
  local pipe = io.popen(server.bin .. " run " .. script .. " 2>&1")
  local out = pipe:read("a")
  pipe:close()
  os.remove(script)
  lu.assertStrContains(out, "false\tmetrics: too many histograms (at most 64 per process)\n")
  lu.assertStrContains(out, "false\tmetrics: too many metric series (at most 1024 per process)\n")
  lu.assertStrContains(out, "\n6\n")
end

return { TestMetricsServe = TestMetricsServe }
