-- scripts/accounts.lua — list the connected accounts in the platform's store.
--
--   stripe-connect run scripts/accounts.lua [--json]
--
-- Reads DATABASE (default sqlite:data/connect.db) like the platform; the
-- other platform settings are not needed for listing.  Tokens are never
-- printed.  --json prints {"data":[…]} as GET /admin/accounts does.
local util = require "stripe_connect.util"
local store_mod = require "stripe_connect.store"
local config = require "stripe_connect.config"
local flow = require "stripe_connect.flow"

local as_json = false
for _, a in ipairs(arg or {}) do
  if a == "--json" then as_json = true
  elseif a == "-h" or a == "--help" then
    print("usage: stripe-connect run scripts/accounts.lua [--json]")
    os.exit(0)
  else
    io.stderr:write("accounts: unknown argument " .. a .. "\n")
    os.exit(2)
  end
end

local url = os.getenv("DATABASE")
if url == nil or url == "" then url = config.DEFAULTS.DATABASE end
local store, err = store_mod.open(url)
if not store then
  io.stderr:write("accounts: " .. tostring(err) .. "\n")
  os.exit(1)
end
local accounts = assert(store:list_accounts())
for i, a in ipairs(accounts) do accounts[i] = flow.public_account(a) end

if as_json then
  print(util.json_data_list(accounts))
else
  local function t(v) return v and os.date("!%Y-%m-%d %H:%M:%SZ", v) or "-" end
  print(string.format("%-24s %-13s %-10s %-5s %s", "ACCOUNT", "STATUS", "SCOPE", "MODE", "CONNECTED"))
  for _, a in ipairs(accounts) do
    print(string.format("%-24s %-13s %-10s %-5s %s", a.id, a.status, a.scope or "-",
      a.livemode and "live" or "test", t(a.connected_at)))
  end
  if #accounts == 0 then print("(no accounts)") end
end
store:close()
