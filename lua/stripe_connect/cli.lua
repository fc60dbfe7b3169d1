-- stripe_connect.cli — what the command-line scripts share: the platform's
-- pieces from the environment, and the body of the one-account scripts.
--
--   from_env([getenv [, ignore]])          -> { config, store, policy } (exits 2 on bad settings)
--   account_script(name, op, describe [, help])   scripts/deauthorize.lua, scripts/refresh.lua
--
-- The platform's routes are stripe_connect.app's; this module only reads
-- settings, opens the store and runs scripts.
local core = require "stripe_connect.core"
local app = require "stripe_connect.app"
local util = require "stripe_connect.util"

local M = {}

-- from_env() -> { config, store, policy }: the platform's pieces from the
-- environment (config.load, DATABASE, POLICY).  Prints what to fix and exits
-- 2 when a setting is missing or invalid, the store cannot be opened or the
-- policy file does not load.  Used by scripts/platform.lua and the ad hoc
-- scripts, so they all share one configuration.  ignore: as config.load's
-- (the settings a script does not use).
function M.from_env(getenv, ignore)
  local config = require "stripe_connect.config"
  local store_mod = require "stripe_connect.store"
  local function refuse(problem)
    io.stderr:write(config.format_problems({ problem }))
    io.stderr:flush()
    os.exit(2)
  end
  local cfg = config.load_or_exit(getenv, ignore)
  -- A script that ignores PUBLIC_URL serves no callback: the policy's
  -- redirect allow-list is never consulted, but policy.new wants one.
  if not cfg.redirect_uris then cfg.redirect_uris = { "http://127.0.0.1/oauth/callback" } end
  local store, err = store_mod.open(cfg.database)
  if not store then
    refuse("DATABASE: " .. tostring(err) .. " (check the path, and that its folder exists and is writable)")
  end
  local log = util.redacting_log(nil, config.secret_values(cfg))
  if cfg.token_keys then
    store = require("stripe_connect.tokens").wrap(store, cfg.token_keys, log)
  elseif (core.serve_worker or 1) == 1 then
    log("stripe-connect: TOKEN_KEYS is not set: the accounts' tokens are stored unencrypted (test mode only; " ..
      "a live key refuses to start without it)")
  end
  local policy, perr = app.policy_of(cfg)
  if not policy then refuse(perr) end
  return { config = cfg, store = store, policy = policy }
end

-- account_script(name, op, describe [, help]) — the body of
-- scripts/deauthorize.lua and scripts/refresh.lua: `--help` prints the usage
-- and help.text; else checks `arg[1]` is an account id, loads the platform's
-- configuration without the settings the script does not use (help.unused:
-- the browser-facing ones), runs op(ctx, id) (flow.deauthorize /
-- flow.refresh style: account | nil, err) and prints the account line or the
-- error; exit code 0, 1 (the operation failed) or 2 (usage or configuration).
function M.account_script(name, op, describe, help)
  help = help or {}
  local usage = "usage: stripe-connect run scripts/" .. name .. ".lua acct_…\n"
  local id = arg and arg[1]
  if id == "--help" or id == "-h" then
    io.write(usage, help.text and ("\n" .. help.text) or "")
    os.exit(0)
  end
  if not id or not id:match("^acct_[%w_]+$") then
    io.stderr:write(usage)
    os.exit(2)
  end
  local unused = {}
  for _, n in ipairs(help.unused or {}) do unused[n] = true end
  local a, err = op(M.from_env(nil, unused), id)
  if not a then
    io.stderr:write(string.format("%s: %s: %s (%s)\n", name, id, err.message, err.reason))
    os.exit(1)
  end
  print(describe(a))
end

return M
