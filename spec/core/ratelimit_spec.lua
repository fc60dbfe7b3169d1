-- C core rate limiter: core.rate_take, the process-wide token buckets
-- (finding 11).  `now` is passed explicitly, so refill is exact and no test
-- waits.  Keys are unique per test (the buckets are shared by every spec of
-- the process).  Runs under Lua 5.4 and LuaJIT.
local lu = require "luaunit"
local core = require "stripe_connect.core"

local TestCoreRateLimit = {}

function TestCoreRateLimit.test_burst_then_refill_per_minute()
  local key, t = "spec burst 127.0.0.1", 1000
  for i = 1, 3 do lu.assertTrue(core.rate_take(key, 3, 6, t), "token " .. i) end
  local ok, retry = core.rate_take(key, 3, 6, t)
  lu.assertFalse(ok)
  lu.assertEquals(retry, 10) -- 6 a minute: one every 10 s
  ok, retry = core.rate_take(key, 3, 6, t + 4)
  lu.assertFalse(ok)
  lu.assertEquals(retry, 6)
  lu.assertTrue(core.rate_take(key, 3, 6, t + 10))
  lu.assertFalse(core.rate_take(key, 3, 6, t + 10))
  -- a long pause refills up to the burst, never beyond
  for i = 1, 3 do lu.assertTrue(core.rate_take(key, 3, 6, t + 10000), "after the pause " .. i) end
  lu.assertFalse(core.rate_take(key, 3, 6, t + 10000))
end

function TestCoreRateLimit.test_keys_are_separate()
  lu.assertTrue(core.rate_take("spec sep a", 1, 1, 50))
  lu.assertFalse(core.rate_take("spec sep a", 1, 1, 50))
  lu.assertTrue(core.rate_take("spec sep b", 1, 1, 50))
  lu.assertTrue(core.rate_take("spec sep a\0x", 1, 1, 50), "NUL bytes are part of the key")
end

function TestCoreRateLimit.test_clock_going_back_takes_nothing_extra()
  lu.assertTrue(core.rate_take("spec back", 1, 60, 500))
  lu.assertFalse(core.rate_take("spec back", 1, 60, 400))
  lu.assertTrue(core.rate_take("spec back", 1, 60, 501))
end

function TestCoreRateLimit.test_many_keys_stay_in_fixed_memory()
  -- far more keys than slots: the table evicts, and a new key always starts full
  for i = 1, 20000 do
    lu.assertTrue(core.rate_take("spec many " .. i, 1, 1, 7), "key " .. i)
  end
  lu.assertTrue(core.rate_take("spec many new", 1, 1, 7))
end

function TestCoreRateLimit.test_misuse_raises()
  local rows = {
    { "no key", function() core.rate_take("", 1, 1) end, "key" },
    { "long key", function() core.rate_take(("k"):rep(128), 1, 1) end, "key" },
    { "burst 0", function() core.rate_take("k", 0, 1) end, "burst" },
    { "rate 0", function() core.rate_take("k", 1, 0) end, "per_minute" },
    { "now NaN", function() core.rate_take("k", 1, 1, 0 / 0) end, "now" },
    { "key not a string", function() core.rate_take({}, 1, 1) end, "string" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(r[2])
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(tostring(err), r[3], false, r[1])
  end
end

return { TestCoreRateLimit = TestCoreRateLimit }
