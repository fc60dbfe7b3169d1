-- scripts/deauthorize.lua — disconnect an account: Stripe's deauthorize, then
-- the store marks it disconnected and the policy's on_deauthorized runs
-- (source "script").  Same configuration as the platform (environment).
--
--   stripe-connect run scripts/deauthorize.lua acct_…
local app = require "stripe_connect.app"
local flow = require "stripe_connect.flow"

local id = arg and arg[1]
if not id or not id:match("^acct_[%w_]+$") then
  io.stderr:write("usage: stripe-connect run scripts/deauthorize.lua acct_…\n")
  os.exit(2)
end
local ctx = app.from_env()
local a, err = flow.deauthorize(ctx, id, "script")
if not a then
  io.stderr:write(string.format("deauthorize: %s: %s (%s)\n", id, err.message, err.reason))
  os.exit(1)
end
print(string.format("%s %s", a.id, a.status))
