-- scripts/authorize_url.lua — print a Stripe Connect OAuth link for the
-- platform whose client id is in STRIPE_CLIENT_ID.
--
--   STRIPE_CLIENT_ID=ca_123 build/stripe-connect run scripts/authorize_url.lua \
--     --scope read_write --email jenny@example.com
--
-- Prints the URL alone on stdout.  Bad options or a missing STRIPE_CLIENT_ID:
-- a message and the usage on stderr, exit status 2.  Without --state a random
-- one (192 bits, base64url) is used; a link made here is for trying things
-- out: nothing binds that state to a browser.
local core = require "stripe_connect.core"
local oauth = require "stripe_connect.oauth"

local USAGE = [[
usage: STRIPE_CLIENT_ID=ca_… stripe-connect run scripts/authorize_url.lua [OPTIONS]

options:
  --scope SCOPE            read_write (default) or read_only
  --redirect-uri URL       absolute http(s) URL registered with Stripe
  --state STATE            CSRF state (default: random)
  --landing PAGE           login or register (stripe_landing)
  --always-prompt          always ask the user to connect
  --express                the Express authorize path
  --connect-base URL       default https://connect.stripe.com
  prefill (stripe_user[…]):
  --email EMAIL            --url URL                --country CC
  --business-name NAME     --business-type TYPE     --phone-number DIGITS
  --first-name NAME        --last-name NAME
  --help                   print this help
]]

-- option name -> { where, key, takes_value }
local OPTIONS = {
  ["--scope"] = { "opt", "scope", true },
  ["--redirect-uri"] = { "opt", "redirect_uri", true },
  ["--state"] = { "opt", "state", true },
  ["--landing"] = { "opt", "stripe_landing", true },
  ["--always-prompt"] = { "opt", "always_prompt", false },
  ["--express"] = { "opt", "express", false },
  ["--connect-base"] = { "opt", "connect_base", true },
  ["--email"] = { "user", "email", true },
  ["--url"] = { "user", "url", true },
  ["--country"] = { "user", "country", true },
  ["--business-name"] = { "user", "business_name", true },
  ["--business-type"] = { "user", "business_type", true },
  ["--phone-number"] = { "user", "phone_number", true },
  ["--first-name"] = { "user", "first_name", true },
  ["--last-name"] = { "user", "last_name", true },
}

local function usage_error(message)
  io.stderr:write("authorize_url: ", message, "\n", USAGE)
  os.exit(2)
end

-- parse(args) -> authorize_url options (without client_id), or nil for --help.
local function parse(args)
  local opts, user = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then return nil end
    local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    local spec = OPTIONS[name]
    if not spec then usage_error("unknown option '" .. a .. "'") end
    local value = true
    if spec[3] then
      value = inline
      if value == nil then
        i = i + 1
        value = args[i]
      end
      if value == nil then usage_error(name .. " needs a value") end
    elseif inline ~= nil then
      usage_error(name .. " takes no value")
    end
    local target = spec[1] == "user" and user or opts
    if target[spec[2]] ~= nil then usage_error(name .. " given twice") end
    target[spec[2]] = value
    i = i + 1
  end
  if next(user) then opts.stripe_user = user end
  return opts
end

local opts = parse({ ... })
if opts == nil then
  io.stdout:write(USAGE)
  os.exit(0)
end
local client_id = os.getenv("STRIPE_CLIENT_ID")
if client_id == nil or client_id == "" then usage_error("STRIPE_CLIENT_ID is not set") end
opts.client_id = client_id
opts.state = opts.state or core.base64url_encode(core.random_bytes(24))

local ok, url = pcall(oauth.authorize_url, opts)
if not ok then
  -- A bad option value (scope, redirect_uri, a prefill field): strip the
  -- "file:line:" prefix, keep the library's message.
  usage_error((tostring(url):gsub("^.-authorize_url: ", "")))
end
io.stdout:write(url, "\n")
