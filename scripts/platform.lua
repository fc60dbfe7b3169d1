-- scripts/platform.lua — the platform app: `stripe-connect serve scripts/platform.lua`.
-- Wires config (environment) + store (DATABASE) + policy (POLICY file) into
-- the routes of stripe_connect.app.  Each serve worker loads this file in its
-- own Lua state; with SQLite every worker opens its own connection.
-- Refuses to start (exit 2) naming each missing or invalid setting.
local config = require "stripe_connect.config"
local store_mod = require "stripe_connect.store"
local policy_mod = require "stripe_connect.policy"
local app = require "stripe_connect.app"

local cfg = config.load_or_exit()

local store, err = store_mod.open(cfg.database)
if not store then
  io.stderr:write(config.format_problems({ "DATABASE: " .. tostring(err) ..
    " (check the path and that its folder exists and is writable)" }))
  os.exit(2)
end

local hooks
if cfg.policy_path then
  local perr
  hooks, perr = policy_mod.load(cfg.policy_path)
  if not hooks then
    io.stderr:write(config.format_problems({ "POLICY: " .. perr }))
    os.exit(2)
  end
end

return app.new{
  config = cfg,
  store = store,
  policy = policy_mod.new(hooks, { redirect_uris = cfg.redirect_uris }),
}
