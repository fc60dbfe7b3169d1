-- scripts/refresh.lua — a new access token for an account from its stored
-- refresh token; the store keeps the newest tokens.  Same configuration as
-- the platform (environment).  Prints the account id, scope and mode (never
-- a token).
--
--   stripe-connect run scripts/refresh.lua acct_…
local app = require "stripe_connect.app"
local flow = require "stripe_connect.flow"

app.account_script("refresh", flow.refresh, function(a)
  return string.format("%s refreshed %s %s", a.id, a.scope or "-", a.livemode and "live" or "test")
end)
