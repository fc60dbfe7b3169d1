-- scripts/platform.lua — the platform app: `stripe-connect serve scripts/platform.lua`.
-- Wires config (environment) + store (DATABASE) + policy (POLICY file) into
-- the routes of stripe_connect.app.  Each serve worker loads this file in its
-- own Lua state; with SQLite every worker opens its own connection.
-- Refuses to start (exit 2) naming each missing or invalid setting.
local app = require "stripe_connect.app"
local cli = require "stripe_connect.cli"

local env = cli.from_env()
return app.new{ config = env.config, store = env.store, policy = env.policy }
