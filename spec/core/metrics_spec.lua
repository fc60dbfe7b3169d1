-- C core metrics: the process-wide registry (metrics_add, metrics_observe,
-- metrics_snapshot) and core.monotonic.  The registry is shared by every
-- spec of this process, so rows use series names of their own and compare
-- before/after.  The cap is tested in a process of its own
-- (spec/integration/metrics_serve_spec.lua).  Runs under Lua 5.4 and LuaJIT.
local lu = require "luaunit"
local core = require "stripe_connect.core"

local TestCoreMetrics = {}

local function counter(series)
  return core.metrics_snapshot().counters[series]
end

function TestCoreMetrics.test_add()
  local rows = {
    -- name, series, n (nil: default), expected total after
    { "default one", "spec_core_plain_total", nil, 1 },
    { "again", "spec_core_plain_total", 4, 5 },
    { "zero", "spec_core_plain_total", 0, 5 },
    { "labels", 'spec_core_labelled_total{result="ok",reason=""}', 2, 2 },
    { "other labels are another series", 'spec_core_labelled_total{result="no"}', 1, 1 },
    { "colon in the name", "spec:core_total", 3, 3 },
  }
  for _, r in ipairs(rows) do
    core.metrics_add(r[2], r[3])
    lu.assertEquals(counter(r[2]), r[4], r[1])
  end
  lu.assertEquals(math.type and math.type(counter("spec_core_plain_total")) or "integer", "integer")
end

function TestCoreMetrics.test_add_misuse()
  local rows = {
    -- name, series, n, message fragment
    { "not a string", 42, 1, "bad argument #1" },
    { "empty", "", 1, "series must be" },
    { "starts with a digit", "1abc", 1, "series must be" },
    { "space", "a b", 1, "series must be" },
    { "labels without the closing brace", 'a{x="1"', 1, "series must be" },
    { "text after the labels", 'a{x="1"} 2', 1, "series must be" },
    { "newline in the labels", 'a{x="\n"}', 1, "series must be" },
    { "too long", "a" .. ("b"):rep(255), 1, "series must be" },
    { "negative", "spec_core_misuse_total", -1, "whole number" },
    { "fraction", "spec_core_misuse_total", 0.5, "whole number" },
    { "over 2^53", "spec_core_misuse_total", 2 ^ 54, "whole number" },
    { "NaN", "spec_core_misuse_total", 0 / 0, "whole number" },
    { "not a number", "spec_core_misuse_total", "1x", "number expected" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(core.metrics_add, r[2], r[3])
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(tostring(err), r[4], false, r[1])
  end
  lu.assertNil(counter("spec_core_misuse_total"))
end

function TestCoreMetrics.test_observe_buckets_sum_count()
  local snap = core.metrics_snapshot()
  local bounds = snap.bounds
  lu.assertEquals(bounds, { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 })
  -- An observation equal to a bound falls in that bound's bucket (le).
  for _, s in ipairs({ 0, 0.0005, 0.003, 1, 10, 11 }) do
    core.metrics_observe("spec_core_seconds", 'route="/x"', s)
  end
  core.metrics_observe("spec_core_seconds", "", 0.2)
  local h = core.metrics_snapshot().histograms.spec_core_seconds
  local x = h['route="/x"']
  lu.assertEquals(x.count, 6)
  lu.assertAlmostEquals(x.sum, 22.0035, 1e-6)
  lu.assertEquals(x.buckets, { 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 5 })
  lu.assertEquals(h[""].count, 1)
  lu.assertEquals(h[""].buckets[8], 0)
  lu.assertEquals(h[""].buckets[9], 1)
end

function TestCoreMetrics.test_observe_misuse()
  local rows = {
    { "bad name", "a-b", "", 1, "name must be" },
    { "empty name", "", "", 1, "name must be" },
    { "labels not a string", "spec_core_m_seconds", nil, 1, "bad argument #2" },
    { "control character in labels", "spec_core_m_seconds", "x=\"\r\"", 1, "labels must be" },
    { "too long", "spec_core_m_seconds", ("x"):rep(250), 1, "labels must be" },
    { "negative", "spec_core_m_seconds", "", -0.001, "seconds must be" },
    { "NaN", "spec_core_m_seconds", "", 0 / 0, "seconds must be" },
    { "huge", "spec_core_m_seconds", "", 1e7, "seconds must be" },
    { "not a number", "spec_core_m_seconds", "", "x", "number expected" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(core.metrics_observe, r[2], r[3], r[4])
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(tostring(err), r[5], false, r[1])
  end
  lu.assertNil(core.metrics_snapshot().histograms.spec_core_m_seconds)
end

function TestCoreMetrics.test_snapshot_is_a_copy()
  core.metrics_add("spec_core_copy_total", 1)
  local snap = core.metrics_snapshot()
  snap.counters.spec_core_copy_total = 100
  lu.assertEquals(counter("spec_core_copy_total"), 1)
end

function TestCoreMetrics.test_monotonic()
  local a = core.monotonic()
  lu.assertEquals(type(a), "number")
  local b = core.monotonic()
  lu.assertTrue(b >= a)
  lu.assertTrue(b - a < 1)
end

return { TestCoreMetrics = TestCoreMetrics }
