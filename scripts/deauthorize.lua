-- scripts/deauthorize.lua — disconnect an account: Stripe's deauthorize, then
-- the store marks it disconnected and the policy's on_deauthorized runs
-- (source "script").  Same configuration as the platform (environment), of
-- which it needs only STRIPE_SECRET_KEY, STRIPE_CLIENT_ID and DATABASE (and
-- TOKEN_KEYS, STRIPE_CONNECT_BASE, STRIPE_TIMEOUT, POLICY when set).
--
--   stripe-connect run scripts/deauthorize.lua acct_…
local cli = require "stripe_connect.cli"
local flow = require "stripe_connect.flow"

cli.account_script("deauthorize", function(ctx, id) return flow.deauthorize(ctx, id, "script") end,
  function(a) return a.id .. " " .. a.status end, {
  unused = { "PUBLIC_URL", "REDIRECT_URIS", "STATE_SECRETS", "ADMIN_TOKEN", "STRIPE_WEBHOOK_SECRETS",
    "ONBOARDING", "RATE_LIMIT", "STATE_TTL" },
  text = [[
Disconnects the account: Stripe's /oauth/deauthorize, then the store marks it
disconnected and the policy's on_deauthorized runs (source "script"); prints
"acct_… disconnected".

Settings (environment, as the platform's): STRIPE_SECRET_KEY (or _FILE),
STRIPE_CLIENT_ID, DATABASE (default sqlite:data/connect.db), TOKEN_KEYS (or
_FILE) when the tokens are encrypted; STRIPE_CONNECT_BASE, STRIPE_TIMEOUT,
POLICY optional.
Exit status: 0 disconnected, 1 Stripe or the store failed, 2 usage or settings.
]],
})
