-- stripe_connect.oauth — Stripe Connect OAuth (Standard accounts):
-- the authorize URL builder, and the token / refresh / deauthorize calls with
-- typed errors.  Facts: PROTOCOL.md §1–4.
local core = require "stripe_connect.core"

local M = {}

M.DEFAULT_CONNECT_BASE = "https://connect.stripe.com"

-- ===================================================== authorize URL (§1)
-- (foundation issue)

-- ============================================ token / refresh / deauthorize
-- (OAuth calls issue)

return M
