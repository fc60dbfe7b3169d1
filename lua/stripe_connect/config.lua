-- stripe_connect.config — the platform's settings from the environment.
--
-- load(getenv) reads every setting, and answers either the config table or
-- nil plus a list of problems, each naming the variable and how to fix it
-- (the platform refuses to start with them; see format_problems).  Secrets
-- are never echoed back in a problem.
--
--   STRIPE_SECRET_KEY      required  sk_test_… / sk_live_… (or rk_…)
--   STRIPE_CLIENT_ID       required  ca_… (Connect settings → OAuth)
--   PUBLIC_URL             required  http(s)://host[:port] the browser uses (the app
--                                    serves its routes at the root of that origin)
--   REDIRECT_URIS          optional  comma list; default PUBLIC_URL/oauth/callback
--   STRIPE_CONNECT_BASE    optional  default https://connect.stripe.com (https:// with a live key)
--   STRIPE_API_BASE        optional  default https://api.stripe.com (https:// with a live key)
--   STATE_SECRETS          required  kid:secret[,kid:secret…], secrets ≥ 32 bytes
--   STATE_TTL              optional  seconds, default 1800 (1–86400)
--   DATABASE               optional  sqlite:PATH (default sqlite:data/connect.db) | memory: |
--                                    postgres://user:pass@host:port/db (several hosts)
--   ADMIN_TOKEN            optional  ≥ 128 bits (e.g. 32 random hex characters); admin routes are 404 without it
--   STRIPE_WEBHOOK_SECRETS optional  whsec_…[,whsec_…]; enables POST /webhooks
--   STRIPE_TIMEOUT         optional  seconds for one call to Stripe, default 30
--   POLICY                 optional  path of a Lua policy file (see policy.lua)
--   ONBOARDING             optional  oauth (default) | account_links | both: what the
--                                    home page offers (POST /onboard is Account Links)
--   TOKEN_KEYS             kid:base64key[,kid:base64key…] (32-byte keys): the
--                                    accounts' tokens are encrypted at rest under the
--                                    first (AES-256-GCM), all decrypt; required with a
--                                    live key (test mode without it: plaintext, warned)
--   RATE_LIMIT             optional  BURST/PER_MINUTE (default 30/30) | off: the token
--                                    bucket per client address on /connect, the
--                                    callback, POST /onboard and POST /admin/login
--
-- Each secret (STRIPE_SECRET_KEY, STATE_SECRETS, ADMIN_TOKEN,
-- STRIPE_WEBHOOK_SECRETS, TOKEN_KEYS) may instead come from a file named by NAME_FILE
-- (its contents, surrounding white space trimmed), e.g. a 0600 file or a
-- container secret, so the value stays out of the process environment.
local util = require "stripe_connect.util"
local state = require "stripe_connect.state"
local tokens = require "stripe_connect.tokens"

local M = {}

M.DEFAULTS = {
  STRIPE_CONNECT_BASE = "https://connect.stripe.com",
  STRIPE_API_BASE = "https://api.stripe.com",
  STATE_TTL = "1800",
  DATABASE = "sqlite:data/connect.db",
  STRIPE_TIMEOUT = "30",
  ONBOARDING = "oauth",
  RATE_LIMIT = "30/30",
}

-- The least strength ADMIN_TOKEN may have, in bits (token_bits).
M.ADMIN_TOKEN_BITS = 128

-- token_bits(s) -> an estimate of s's strength in bits, as if its
-- characters were drawn at random from the classes it uses: digits only
-- (10), hex digits (16), or else digits (10), lower case (26), upper case
-- (26) and other characters (32) together.  A token that repeats itself (fewer
-- distinct characters than a quarter of its length, or fewer than 8) counts
-- as its distinct characters only.  32 random hex characters are 128 bits;
-- 22 base64url characters with all four classes count as 144.
function M.token_bits(s)
  local pool
  if s:match("^%d+$") then
    pool = 10
  elseif s:match("^[0-9a-f]+$") or s:match("^[0-9A-F]+$") then
    pool = 16
  else
    pool = 0
    if s:find("%d") then pool = pool + 10 end
    if s:find("%l") then pool = pool + 26 end
    if s:find("%u") then pool = pool + 26 end
    if s:find("[^%w]") then pool = pool + 32 end
  end
  local seen, distinct = {}, 0
  for ch in s:gmatch(".") do
    if not seen[ch] then seen[ch] = true; distinct = distinct + 1 end
  end
  local n = #s
  if distinct < 8 or distinct < n / 4 then n = distinct end
  return math.floor(n * math.log(pool) / math.log(2))
end

-- The settings that may come from NAME_FILE instead.
M.SECRET_FILES = { STRIPE_SECRET_KEY = true, STATE_SECRETS = true, ADMIN_TOKEN = true, STRIPE_WEBHOOK_SECRETS = true,
  TOKEN_KEYS = true }

local function trim(s)
  if s == nil then return nil end
  s = s:match("^%s*(.-)%s*$")
  if s == "" then return nil end
  return s
end

-- base_url(s) -> normalised "scheme://host[:port][/path]" (no trailing "/")
-- or nil: http or https only, a host, no query, no fragment, no spaces.
local function base_url(s)
  if type(s) ~= "string" or s:find("[%s?#\\]") then return nil end
  local scheme, rest = s:match("^(https?)://(.+)$")
  if not scheme then return nil end
  local host = rest:match("^([^/]+)")
  if not host or host:find("@", 1, true) then return nil end
  return (s:gsub("/+$", "")), scheme == "https"
end

local function number_in(s, lo, hi)
  local n = tonumber(s)
  if not n or n < lo or n > hi then return nil end
  return n
end

-- The settings' checkers, in the order their problems are listed: each
-- check(c, get, problem, getenv) reads its setting(s) with get (NAME_FILE
-- and the default included), stores the parsed value(s) in c and reports
-- each problem with problem(fmt, ...).  Later checkers may read what
-- earlier ones stored (c.livemode, c.public_url).
local check = {}

-- STRIPE_SECRET_KEY (sk_/rk_, test or live); sets c.livemode, which later checks read.
function check.secret_key(c, get, problem)
  c.secret_key = get("STRIPE_SECRET_KEY")
  if not c.secret_key then
    problem("STRIPE_SECRET_KEY is not set: export the platform's secret key (sk_test_… or sk_live_…, " ..
      "Stripe Dashboard → Developers → API keys), or name a file holding it in STRIPE_SECRET_KEY_FILE")
  elseif not c.secret_key:match("^[sr]k_[%w]+_[%w_]+$") then
    problem("STRIPE_SECRET_KEY does not look like a Stripe secret key: it must start with sk_test_, " ..
      "sk_live_ (or rk_…) and contain no spaces")
  end
  c.livemode = c.secret_key ~= nil and c.secret_key:match("^[sr]k_live_") ~= nil
end

-- STRIPE_CLIENT_ID (ca_…).
function check.client_id(c, get, problem)
  c.client_id = get("STRIPE_CLIENT_ID")
  if not c.client_id then
    problem("STRIPE_CLIENT_ID is not set: export the platform's Connect client id (ca_…, " ..
      "Stripe Dashboard → Settings → Connect → Onboarding options → OAuth)")
  elseif not c.client_id:match("^ca_[%w_]+$") then
    problem("STRIPE_CLIENT_ID must be a Connect client id: ca_ followed by letters and digits")
  end
end

-- PUBLIC_URL: an origin without a path; https:// with a live key.
function check.public_url(c, get, problem)
  local public = get("PUBLIC_URL")
  if not public then
    problem("PUBLIC_URL is not set: export the URL browsers use to reach this app, " ..
      "e.g. PUBLIC_URL=https://platform.example.com")
  else
    c.public_url, c.secure = base_url(public)
    if not c.public_url then
      problem("PUBLIC_URL must be an http:// or https:// URL without query or fragment, e.g. https://platform.example.com")
    elseif c.public_url:match("^https?://[^/]+/") then
      -- The pages, redirects and cookies use root paths (/connect,
      -- /connected, Path=/), so a prefix would send browsers off the app.
      problem("PUBLIC_URL must be an origin without a path (e.g. https://platform.example.com): " ..
        "the app serves /connect, /oauth/callback, … at the root of its host; give it its own host name")
      c.public_url = nil
    elseif c.livemode and not c.secure then
      problem("PUBLIC_URL must be https:// with a live key (Stripe requires HTTPS redirect URIs in live mode)")
    end
  end
end

-- REDIRECT_URIS (comma list), else PUBLIC_URL/oauth/callback.
function check.redirect_uris(c, get, problem)
  local redirects = get("REDIRECT_URIS")
  if redirects then
    c.redirect_uris = {}
    for _, u in ipairs(util.split_list(redirects)) do
      local ok, https = base_url(u)
      if not ok then
        problem("REDIRECT_URIS: %q is not an http(s) URL without query or fragment", u)
      elseif c.livemode and not https then
        problem("REDIRECT_URIS: %q must be https:// with a live key", u)
      else
        c.redirect_uris[#c.redirect_uris + 1] = ok
      end
    end
    if #c.redirect_uris == 0 then problem("REDIRECT_URIS is set but lists no URL") end
  elseif c.public_url then
    c.redirect_uris = { c.public_url .. "/oauth/callback" }
  end
end

-- STRIPE_CONNECT_BASE and STRIPE_API_BASE, in that order.
function check.stripe_bases(c, get, problem)
  for _, name in ipairs({ "STRIPE_CONNECT_BASE", "STRIPE_API_BASE" }) do
    local v, https = base_url(get(name))
    if not v then
      problem("%s must be an http(s) base URL such as %s", name, M.DEFAULTS[name])
    elseif c.livemode and not https then
      -- A live key (and the codes and tokens) would cross the network in clear.
      problem("%s must be https:// with a live key (the secret key, codes and tokens would travel " ..
        "unencrypted); unset it to use %s", name, M.DEFAULTS[name])
      v = nil
    end
    c[name == "STRIPE_CONNECT_BASE" and "connect_base" or "api_base"] = v
  end
end

-- STATE_SECRETS (kid:secret pairs) -> c.keyring.
function check.state_secrets(c, get, problem)
  local secrets = get("STATE_SECRETS")
  if not secrets then
    problem("STATE_SECRETS is not set: export kid:secret pairs, e.g. " ..
      "STATE_SECRETS=k1:$(head -c 32 /dev/urandom | base64 | tr -d =) (first mints, all verify), " ..
      "or name a file holding them in STATE_SECRETS_FILE")
  else
    local kr, err = state.keyring(secrets)
    if not kr then
      problem("STATE_SECRETS is invalid (%s): use kid:secret[,kid:secret…], each secret at least " ..
        "32 bytes, e.g. k1:$(head -c 32 /dev/urandom | base64 | tr -d =)", err)
    end
    c.keyring = kr
  end
end

-- STATE_TTL (1–86400 s).
function check.state_ttl(c, get, problem)
  c.state_ttl = number_in(get("STATE_TTL"), 1, 86400)
  if not c.state_ttl then problem("STATE_TTL must be a number of seconds between 1 and 86400 (default 1800)") end
  c.state_ttl = c.state_ttl and math.floor(c.state_ttl)
end

-- DATABASE (sqlite:, postgres://, memory:).
function check.database(c, get, problem)
  c.database = get("DATABASE")
  if not (c.database:match("^sqlite:.+") or c.database == "memory:" or c.database:match("^postgres://.")
          or c.database:match("^postgresql://.")) then
    problem("DATABASE must be sqlite:PATH (e.g. sqlite:data/connect.db), postgres://user:pass@host:port/db or memory:")
  end
end

-- ADMIN_TOKEN (at least ADMIN_TOKEN_BITS strong).
function check.admin_token(c, get, problem)
  c.admin_token = get("ADMIN_TOKEN")
  if c.admin_token and M.token_bits(c.admin_token) < M.ADMIN_TOKEN_BITS then
    problem("ADMIN_TOKEN is too weak (about %d bits; at least %d are needed, e.g. 32 random hex characters: " ..
      "$(openssl rand -hex 16)); unset it to disable the admin routes", M.token_bits(c.admin_token), M.ADMIN_TOKEN_BITS)
  end
end

-- STRIPE_WEBHOOK_SECRETS (whsec_… list).
function check.webhook_secrets(c, get, problem)
  local whsecs = get("STRIPE_WEBHOOK_SECRETS")
  if whsecs then
    c.webhook_secrets = util.split_list(whsecs)
    if #c.webhook_secrets == 0 then problem("STRIPE_WEBHOOK_SECRETS is set but lists no secret") end
    for i, w in ipairs(c.webhook_secrets) do
      if not w:match("^whsec_[%w_]+$") then
        problem("STRIPE_WEBHOOK_SECRETS: entry %d is not a webhook signing secret: each must be whsec_… " ..
          "(Dashboard → Developers → Webhooks → the endpoint's Signing secret), comma-separated", i)
      end
    end
  end
end

-- STRIPE_TIMEOUT (0.1–300 s).
function check.stripe_timeout(c, get, problem)
  c.stripe_timeout = number_in(get("STRIPE_TIMEOUT"), 0.1, 300)
  if not c.stripe_timeout then problem("STRIPE_TIMEOUT must be a number of seconds between 0.1 and 300 (default 30)") end
end

-- ONBOARDING (oauth, account_links or both).
function check.onboarding(c, get, problem)
  local onboarding = get("ONBOARDING")
  c.onboarding = ({ oauth = { oauth = true }, account_links = { account_links = true },
    both = { oauth = true, account_links = true } })[onboarding]
  if not c.onboarding then problem("ONBOARDING must be oauth, account_links or both (default oauth)") end
end

-- TOKEN_KEYS (kid:base64key pairs); required with a live key.
function check.token_keys(c, get, problem)
  local token_keys = get("TOKEN_KEYS")
  if token_keys then
    local kr, err = tokens.keyring(token_keys)
    if not kr then
      problem("TOKEN_KEYS is invalid (%s): use kid:base64key[,kid:base64key…], each key 32 random bytes, " ..
        "e.g. TOKEN_KEYS=k1:$(head -c 32 /dev/urandom | base64) (first encrypts, all decrypt), " ..
        "or name a file holding them in TOKEN_KEYS_FILE", err)
    end
    c.token_keys = kr
  elseif c.livemode then
    problem("TOKEN_KEYS is not set: with a live key the accounts' tokens must be encrypted at rest; export " ..
      "TOKEN_KEYS=k1:$(head -c 32 /dev/urandom | base64), or name a 0600 file holding it in TOKEN_KEYS_FILE")
  end
end

-- RATE_LIMIT (BURST/PER_MINUTE or off).
function check.rate_limit(c, get, problem)
  local rl = get("RATE_LIMIT")
  if rl ~= "off" then
    local burst, per_minute = rl:match("^(%d+)/(%d+)$")
    burst, per_minute = tonumber(burst), tonumber(per_minute)
    if not burst or burst < 1 or burst > 1e9 or per_minute < 1 or per_minute > 1e9 then
      problem("RATE_LIMIT must be BURST/PER_MINUTE (whole numbers from 1 to 1000000000, e.g. 30/30: " ..
        "30 requests at once, then 30 a minute per client address) or off (default 30/30)")
    else
      c.rate_limit = { burst = burst, per_minute = per_minute }
    end
  end
end

-- POLICY (a readable file; never from POLICY_FILE).
function check.policy(c, get, problem, getenv)
  c.policy_path = trim(getenv("POLICY"))
  if c.policy_path then
    local f = io.open(c.policy_path, "r")
    if not f then problem("POLICY: cannot read %q; point it at a Lua policy file (see scripts/example_policy.lua)", c.policy_path)
    else f:close() end
  end
end

local CHECKS = { check.secret_key, check.client_id, check.public_url, check.redirect_uris,
  check.stripe_bases, check.state_secrets, check.state_ttl, check.database, check.admin_token,
  check.webhook_secrets, check.stripe_timeout, check.onboarding, check.token_keys, check.rate_limit,
  check.policy }

-- getter(getenv, problem, unreadable) -> get(name): the setting, from NAME
-- or NAME_FILE (not both), trimmed, else its default.  A NAME_FILE that
-- cannot be read is a problem and marks unreadable[NAME].
local function getter(getenv, problem, unreadable)
  return function(name)
    local v = trim(getenv(name))
    local path = M.SECRET_FILES[name] and trim(getenv(name .. "_FILE"))
    if path then
      if v then
        problem("%s and %s_FILE are both set: keep one of them", name, name)
      else
        local f = io.open(path, "rb")
        v = f and trim(f:read("a"))
        if f then f:close() end
        if not v then
          problem("%s_FILE: cannot read %q, or it is empty (check the path and its permissions)", name, path)
          unreadable[name] = true
        end
      end
    end
    return v or M.DEFAULTS[name]
  end
end

-- kept_problems(problems, unreadable, ignore) -> the problems to report:
-- none about an ignored setting (NAME … or NAME_FILE …).
local function kept_problems(problems, unreadable, ignore)
  -- One start-up problem, one message: "NAME is not set" after its
  -- unreadable NAME_FILE would say the same thing twice.
  local kept = {}
  for _, pr in ipairs(problems) do
    local name = pr:match("^([%u_]+) is not set")
    local about = pr:match("^([%u_]+)"):gsub("_FILE$", "")
    if not (name and unreadable[name]) and not (ignore and ignore[about]) then kept[#kept + 1] = pr end
  end
  return kept
end

-- load(getenv [, ignore]) -> config | nil, problems
-- getenv: function(name) -> string|nil (default os.getenv).  ignore: a set of
-- setting names whose problems (NAME … and NAME_FILE …) are dropped, for a
-- script that does not use them (the config's fields for them may be nil).
function M.load(getenv, ignore)
  getenv = getenv or os.getenv
  local problems = {}
  local unreadable = {} -- NAME whose NAME_FILE could not be read: that is its one problem
  local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
  local get = getter(getenv, problem, unreadable)
  local c = {}
  for _, check_one in ipairs(CHECKS) do check_one(c, get, problem, getenv) end
  problems = kept_problems(problems, unreadable, ignore)
  if #problems > 0 then return nil, problems end
  return c
end

-- format_problems(problems) -> the text printed when refusing to start.
function M.format_problems(problems)
  local lines = { "stripe-connect: refusing to start; fix these settings:" }
  for _, p in ipairs(problems) do lines[#lines + 1] = "  - " .. p end
  return table.concat(lines, "\n") .. "\n"
end

-- load_or_exit(getenv [, ignore]) -> config; prints the problems and exits 2 otherwise.
function M.load_or_exit(getenv, ignore)
  local c, problems = M.load(getenv, ignore)
  if c then return c end
  io.stderr:write(M.format_problems(problems))
  io.stderr:flush()
  os.exit(2)
end

-- secret_values(cfg) -> the configured secrets (secret key, state secrets,
-- admin token, webhook secrets) as a list, for util.redact.  Tolerates a
-- hand-made config that lacks some of them.
function M.secret_values(cfg)
  local out = {}
  local function add(v) if type(v) == "string" and v ~= "" then out[#out + 1] = v end end
  add(cfg.secret_key)
  add(cfg.admin_token)
  for _, w in ipairs(cfg.webhook_secrets or {}) do add(w) end
  for _, k in ipairs(cfg.keyring and cfg.keyring.keys or {}) do add(k.secret) end
  for _, k in ipairs(cfg.token_keys and cfg.token_keys.keys or {}) do add(k.text) end
  return out
end

return M
