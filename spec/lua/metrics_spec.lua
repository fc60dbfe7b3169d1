-- stripe_connect.metrics: the same rows against the Lua-table fallback
-- (metrics.new()) and the core's process-wide registry (metrics.new(core));
-- the Prometheus text of a registry; the cap.  The core registry is shared
-- by every spec of this process, so its rows use names of their own and
-- compare before/after.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local metrics = require "stripe_connect.metrics"

local TestMetrics = {}

local function backends()
  return { { "lua tables", metrics.new() }, { "core", metrics.new(core) } }
end

function TestMetrics.test_module_uses_the_core_registry()
  lu.assertTrue(metrics.shared)
  lu.assertTrue(metrics.new(core).shared)
  lu.assertFalse(metrics.new().shared)
  lu.assertFalse(metrics.new({}).shared)
  metrics.incr("spec_lua_module_total", 2)
  lu.assertEquals(core.metrics_snapshot().counters.spec_lua_module_total, 2)
  lu.assertEquals(metrics.snapshot().bounds, metrics.BOUNDS)
  lu.assertEquals(metrics.new().snapshot().bounds, metrics.BOUNDS)
end

function TestMetrics.test_incr_and_observe()
  for _, b in ipairs(backends()) do
    local name, r = b[1], b[2]
    local before = r.snapshot().counters['spec_lua_incr_total{k="v"}'] or 0
    r.incr('spec_lua_incr_total{k="v"}')
    r.incr('spec_lua_incr_total{k="v"}', 2)
    lu.assertEquals(r.snapshot().counters['spec_lua_incr_total{k="v"}'], before + 3, name)
    local route = "/spec-lua-" .. name:gsub(" ", "-")
    for _, s in ipairs({ 0.0001, 0.004, 0.3, 30 }) do r.observe(route, s) end
    local h = r.snapshot().histograms[metrics.DURATION]['route="' .. route .. '"']
    lu.assertEquals(h.count, 4, name)
    lu.assertAlmostEquals(h.sum, 30.3041, 1e-6, name)
    lu.assertEquals(h.buckets, { 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3 }, name)
  end
end

function TestMetrics.test_misuse_raises_alike()
  local rows = {
    { "incr: series not a string", function(r) r.incr(7) end, "string expected" },
    { "incr: bad series", function(r) r.incr("no spaces allowed") end, "series must be" },
    { "incr: labels not closed", function(r) r.incr('x{a="1"') end, "series must be" },
    { "incr: negative", function(r) r.incr("spec_lua_bad_total", -2) end, "whole number" },
    { "incr: fraction", function(r) r.incr("spec_lua_bad_total", 1.5) end, "whole number" },
    { "incr: n not a number", function(r) r.incr("spec_lua_bad_total", {}) end, "number expected" },
    { "observe: route not a string", function(r) r.observe(nil, 1) end, "route must be a string" },
    { "observe: negative", function(r) r.observe("/spec-bad", -1) end, "seconds must be" },
    { "observe: NaN", function(r) r.observe("/spec-bad", 0 / 0) end, "seconds must be" },
    { "observe: control character", function(r) r.observe("/spec\tbad", 1) end, "labels must be" },
  }
  for _, b in ipairs(backends()) do
    for _, row in ipairs(rows) do
      local ok, err = pcall(row[2], b[2])
      lu.assertFalse(ok, b[1] .. ": " .. row[1])
      lu.assertStrContains(tostring(err), row[3], false, b[1] .. ": " .. row[1])
    end
    lu.assertNil(b[2].snapshot().counters.spec_lua_bad_total, b[1])
  end
end

function TestMetrics.test_text()
  local r = metrics.new()
  lu.assertEquals(r.text(), "")
  r.incr('b_total{x="2"}')
  r.incr('b_total{x="1"}', 3)
  r.incr("a_total")
  r.observe("/connect", 0.002)
  r.observe("/connect", 0.02)
  r.observe('/we"ird\\', 0.5)
  local text = r.text()
  local expected = {
    "# TYPE a_total counter", "a_total 1",
    "# TYPE b_total counter", 'b_total{x="1"} 3', 'b_total{x="2"} 1',
    "# TYPE stripe_connect_request_duration_seconds histogram",
  }
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  for i, line in ipairs(expected) do lu.assertEquals(lines[i], line) end
  lu.assertEquals(text:sub(-1), "\n")
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_bucket{route="/connect",le="0.0005"} 0\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_bucket{route="/connect",le="0.0025"} 1\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_bucket{route="/connect",le="0.025"} 2\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_bucket{route="/connect",le="10"} 2\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_bucket{route="/connect",le="+Inf"} 2\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_sum{route="/connect"} 0.022\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_count{route="/connect"} 2\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_count{route="/we\\"ird\\\\"} 1\n')
  -- 14 bounds + Inf + sum + count per route, two routes, one TYPE line.
  local n = 0
  for _ in text:gmatch("stripe_connect_request_duration_seconds") do n = n + 1 end
  lu.assertEquals(n, 2 * 17 + 1)
end

function TestMetrics.test_cap_of_the_lua_registry()
  local r = metrics.new()
  for i = 1, metrics.MAX_SERIES do r.incr("spec_cap_" .. i .. "_total") end
  r.incr("spec_cap_1_total") -- an existing series still counts
  local ok, err = pcall(r.incr, "spec_cap_over_total")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "too many metric series (at most 1024 per process)")
  r = metrics.new()
  for i = 1, metrics.MAX_HISTOGRAMS do r.observe("/r" .. i, 0.1) end
  ok, err = pcall(r.observe, "/one-more", 0.1)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "too many histograms (at most 64 per process)")
end

function TestMetrics.test_clock()
  lu.assertEquals(metrics.clock, core.monotonic)
  local a = metrics.clock()
  lu.assertTrue(metrics.clock() >= a)
end

return { TestMetrics = TestMetrics }
