-- scripts/api.lua — an ad hoc Stripe API call as the platform or as a
-- connected account (stripe_connect.api, with its retries):
--
--   build/stripe-connect run scripts/api.lua METHOD PATH [key=value…] [--account acct_…]
--     [--idempotency-key KEY] [--api-version VERSION]
--
--   build/stripe-connect run scripts/api.lua GET /v1/account --account acct_123
--   build/stripe-connect run scripts/api.lua POST /v1/customers email=jenny@example.com metadata[order]=42 --account acct_123
--   build/stripe-connect run scripts/api.lua GET /v1/customers limit=3 expand[]=data.default_source
--
-- key=value pairs are the parameters (brackets nest as Stripe's form
-- encoding: a[b]=1, a[]=x appends, a[0]=x is the first element), sent in the
-- query for GET/DELETE and in the body for POST.  Needs STRIPE_SECRET_KEY
-- (STRIPE_API_BASE moves the API, e.g. to the fake Connect).  With the
-- platform's whole configuration set, an account Stripe answers "not
-- connected" for is also marked disconnected in the store.
-- Prints the JSON answer; exit 0, 1 (Stripe refused or was unreachable), or
-- 2 (usage or configuration).  The key is never printed.
local cjson = require "cjson.safe"
local api = require "stripe_connect.api"

local USAGE = "usage: stripe-connect run scripts/api.lua METHOD PATH [key=value…] [--account acct_…] " ..
  "[--idempotency-key KEY] [--api-version VERSION]\n"

local function usage(msg)
  if msg then io.stderr:write("api: ", msg, "\n") end
  io.stderr:write(USAGE)
  os.exit(2)
end

local args = arg or {}
if args[1] == "--help" or args[1] == "-h" then io.write(USAGE) os.exit(0) end
local method, path = args[1], args[2]
if not method or not path then usage() end
method = method:upper()
if not (method == "GET" or method == "POST" or method == "DELETE") then usage("METHOD must be GET, POST or DELETE") end
if not path:match("^/v%d+/[%w_%-/%.]*$") then usage("PATH must look like /v1/customers") end

-- set(params, "a[b][]", v): Stripe's bracket keys into nested tables.
local function set(params, key, value)
  local names = { key:match("^([^%[]+)") }
  if not names[1] then usage("bad parameter name " .. key) end
  local rest = key:sub(#names[1] + 1)
  for part in rest:gmatch("%[([^%]]*)%]") do names[#names + 1] = part end
  local t = params
  for i = 1, #names - 1 do
    local k = names[i]
    if k == "" then k = #t + 1 elseif k:match("^%d+$") then k = tonumber(k) + 1 end
    t[k] = t[k] or {}
    t = t[k]
  end
  local last = names[#names]
  if last == "" then last = #t + 1 elseif last:match("^%d+$") then last = tonumber(last) + 1 end
  t[last] = value
end

local params, opts = {}, {}
local i = 3
while i <= #args do
  local a = args[i]
  local flag, inline = a:match("^%-%-([%w-]+)=(.*)$")
  flag = flag or a:match("^%-%-([%w-]+)$")
  if flag then
    local value = inline
    if not value then i = i + 1; value = args[i] end
    if not value then usage("--" .. flag .. " needs a value") end
    if flag == "account" then
      if not value:match("^acct_[%w_]+$") then usage("--account must be an acct_… id") end
      opts.account = value
    elseif flag == "idempotency-key" then opts.idempotency_key = value
    elseif flag == "api-version" then opts.api_version = value
    else usage("unknown option --" .. flag) end
  else
    local k, v = a:match("^([^=]+)=(.*)$")
    if not k then usage("parameters are key=value, not " .. a) end
    set(params, k, v)
  end
  i = i + 1
end

local client
local config = require "stripe_connect.config"
local cfg = config.load()
if cfg then
  -- the platform's configuration: wired to its store (not-connected accounts are marked)
  local env = require("stripe_connect.cli").from_env()
  client = require("stripe_connect.flow").api({ config = env.config, store = env.store, policy = env.policy,
    log = function(msg) io.stderr:write(msg, "\n") end })
else
  local key = os.getenv("STRIPE_SECRET_KEY")
  if not key or not key:match("^[sr]k_[%w]+_[%w_]+$") then
    usage("STRIPE_SECRET_KEY must be set to the platform's sk_… (or rk_…) key")
  end
  local base = os.getenv("STRIPE_API_BASE")
  client = api.new{ secret_key = key, api_base = base ~= "" and base or nil,
    timeout = tonumber(os.getenv("STRIPE_TIMEOUT") or "") or 30 }
end

local r = { method = method, path = path, params = next(params) and params or nil }
for k, v in pairs(opts) do r[k] = v end
local res, err = client:request(r)
if not res then
  io.stderr:write("api: ", tostring(err), "\n")
  os.exit(1)
end
print(cjson.encode(res))
