-- An app for serve_every_spec: a periodic task (core.every) on the process's
-- shared memory store.  Each run counts itself in the store (a store call:
-- the run yields while the database thread works), sleeps (yields again),
-- and every third run raises after counting.  GET /ticks answers the count,
-- GET /armed what core.every answered in the worker that serves it.
local core = require "stripe_connect.core"
local store = assert(require("stripe_connect.store").open("memory:"))

local runs = 0
local armed = core.every(0.05, function()
  runs = runs + 1
  local a = store:get_account("acct_ticks") or { id = "acct_ticks", status = "connected", n = 0 }
  a.n = a.n + 1
  assert(store:put_account(a))
  core.sleep(0.01)
  if runs % 3 == 0 then error("task failure number " .. runs // 3) end
end)

return {
  { "GET", "/ticks", function()
      local a = store:get_account("acct_ticks")
      return { body = tostring(a and a.n or 0) }
    end },
  { "GET", "/armed", function() return { body = tostring(armed) .. " " .. tostring(core.serve_worker) } end },
}
