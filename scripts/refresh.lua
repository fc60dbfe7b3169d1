-- scripts/refresh.lua — a new access token for an account from its stored
-- refresh token; the store keeps the newest tokens.  Same configuration as
-- the platform (environment), of which it needs only STRIPE_SECRET_KEY,
-- DATABASE and TOKEN_KEYS (and STRIPE_CONNECT_BASE, STRIPE_TIMEOUT, POLICY
-- when set).  Prints the account id, scope and mode (never a token).
--
--   stripe-connect run scripts/refresh.lua acct_…
local cli = require "stripe_connect.cli"
local flow = require "stripe_connect.flow"

cli.account_script("refresh", flow.refresh, function(a)
  return string.format("%s refreshed %s %s", a.id, a.scope or "-", a.livemode and "live" or "test")
end, {
  unused = { "STRIPE_CLIENT_ID", "PUBLIC_URL", "REDIRECT_URIS", "STATE_SECRETS", "ADMIN_TOKEN",
    "STRIPE_WEBHOOK_SECRETS", "ONBOARDING", "RATE_LIMIT", "STATE_TTL" },
  text = [[
Refreshes the account's access token from its stored refresh token (Stripe's
/oauth/token, grant_type=refresh_token); prints "acct_… refreshed SCOPE MODE".

Settings (environment, as the platform's): STRIPE_SECRET_KEY (or _FILE),
DATABASE (default sqlite:data/connect.db), TOKEN_KEYS (or _FILE) when the
tokens are encrypted; STRIPE_CONNECT_BASE, STRIPE_TIMEOUT, POLICY optional.
Exit status: 0 refreshed, 1 the refresh failed, 2 usage or settings.
]],
})
