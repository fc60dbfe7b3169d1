-- scripts/deauthorize.lua — disconnect an account: Stripe's deauthorize, then
-- the store marks it disconnected and the policy's on_deauthorized runs
-- (source "script").  Same configuration as the platform (environment).
--
--   stripe-connect run scripts/deauthorize.lua acct_…
local app = require "stripe_connect.app"
local flow = require "stripe_connect.flow"

app.account_script("deauthorize", function(ctx, id) return flow.deauthorize(ctx, id, "script") end,
  function(a) return a.id .. " " .. a.status end)
