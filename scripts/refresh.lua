-- scripts/refresh.lua — a new access token for an account from its stored
-- refresh token; the store keeps the newest tokens.  Same configuration as
-- the platform (environment).  Prints the account id, scope and mode (never
-- a token).
--
--   stripe-connect run scripts/refresh.lua acct_…
local app = require "stripe_connect.app"
local flow = require "stripe_connect.flow"

local id = arg and arg[1]
if not id or not id:match("^acct_[%w_]+$") then
  io.stderr:write("usage: stripe-connect run scripts/refresh.lua acct_…\n")
  os.exit(2)
end
local ctx = app.from_env()
local a, err = flow.refresh(ctx, id)
if not a then
  io.stderr:write(string.format("refresh: %s: %s (%s)\n", id, err.message, err.reason))
  os.exit(1)
end
print(string.format("%s refreshed %s %s", a.id, a.scope or "-", a.livemode and "live" or "test"))
