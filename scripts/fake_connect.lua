-- scripts/fake_connect.lua — an offline Stripe Connect for tests and local
-- development (stripe_connect.fake):
--
--   build/stripe-connect serve scripts/fake_connect.lua --listen 127.0.0.1:12111 --workers 1
--
-- Configured by FAKE_CLIENT_ID, FAKE_SECRET_KEY (sk_test_… / sk_live_… sets
-- the mode), FAKE_REDIRECT_URIS, FAKE_WEBHOOK_URL, FAKE_WEBHOOK_SECRETS
-- (comma lists) and FAKE_PLATFORM_NAME.  State is in memory per worker:
-- always run it with --workers 1.
local fake = require "stripe_connect.fake"

return fake.new(fake.config_from_env()):handler()
