-- stripe_connect.policy (defaults, allow-lists, local return paths) and
-- stripe_connect.config (every setting's check, refusal messages).
local lu = require "luaunit"
local policy_mod = require "stripe_connect.policy"
local config = require "stripe_connect.config"
local util = require "stripe_connect.util"
local core = require "stripe_connect.core"

local ALLOW = { "https://p.example/oauth/callback", "https://p.example/alt/callback" }

local TestPolicy = {}

function TestPolicy.test_is_local_path_rows()
  local rows = {
    { "/", true }, { "/dashboard", true }, { "/a/b?x=1&y=2#frag", true },
    { "", false }, { "dashboard", false }, { "//evil.example", false }, { "/a//b", false },
    { "/\\evil.example", false }, { "\\\\evil", false }, { "https://evil.example/", false },
    { "javascript:alert(1)", false }, { "/a b", false }, { "/a\nb", false }, { "/%2F%2Fevil", false },
    { "/%5cevil", false }, { "/" .. ("a"):rep(600), false }, { 42, false },
  }
  for _, row in ipairs(rows) do
    lu.assertEquals(util.is_local_path(row[1]), row[2], tostring(row[1]))
  end
end

function TestPolicy.test_defaults()
  local p = policy_mod.new(nil, { redirect_uris = ALLOW, log = function() end })
  local req = { args = { return_to = "/x" } }
  lu.assertEquals(p.scope(req), "read_write")
  lu.assertEquals(p.redirect_uri(req), ALLOW[1])
  lu.assertNil(p.prefill(req))
  lu.assertEquals(p.return_to(req), "/x")
  lu.assertNil(p.return_to({ args = { return_to = "https://evil.example" } }))
  lu.assertNil(p.return_to({ args = {} }))
  lu.assertNil(p.on_connected({ id = "acct_1" }, req))
end

function TestPolicy.test_hooks_are_checked()
  local logs = {}
  local p = policy_mod.new({
    scope = function() return "admin" end,
    redirect_uri = function(req) return req.args.r end,
    return_to = function() return "//evil" end,
    prefill = function() return { email = "a@b.example", nested = {} } end,
    on_connected = function() error("boom") end,
  }, { redirect_uris = ALLOW, log = function(m) logs[#logs + 1] = m end })
  lu.assertEquals(p.scope({}), "read_write")
  lu.assertEquals(p.redirect_uri({ args = { r = ALLOW[2] } }), ALLOW[2])
  lu.assertEquals(p.redirect_uri({ args = { r = "https://evil.example/cb" } }), ALLOW[1])
  lu.assertNil(p.return_to({ args = {} }))
  lu.assertEquals(p.prefill({}), { email = "a@b.example" })
  lu.assertNil(p.on_connected({}, {}))
  lu.assertTrue(#logs >= 3)
  lu.assertErrorMsgContains("unknown hook", policy_mod.new, { on_conected = function() end }, { redirect_uris = ALLOW })
end

function TestPolicy.test_load_example_policy()
  local hooks = assert(policy_mod.load("scripts/example_policy.lua"))
  lu.assertIsFunction(hooks.prefill)
  local p = policy_mod.new(hooks, { redirect_uris = ALLOW })
  lu.assertEquals(p.prefill({ args = { email = "x@y.example" } }), { email = "x@y.example", country = "US" })
  lu.assertEquals(p.return_to({ args = {} }), "/connected")
  local bad = os.tmpname()
  local f = io.open(bad, "w"); f:write("return { on_conected = function() end }"); f:close()
  local h, err = policy_mod.load(bad)
  os.remove(bad)
  lu.assertNil(h)
  lu.assertStrContains(err, "unknown hook")
end

local TestConfig = {}

local GOOD = {
  STRIPE_SECRET_KEY = "sk_test_abc123", STRIPE_CLIENT_ID = "ca_abc123", PUBLIC_URL = "http://127.0.0.1:8080/",
  STATE_SECRETS = "k1:" .. ("x"):rep(32),
}

local function env(over)
  local t = {}
  for k, v in pairs(GOOD) do t[k] = v end
  for k, v in pairs(over or {}) do if v == false then t[k] = nil else t[k] = v end end
  return function(name) return t[name] end
end

function TestConfig.test_good_defaults()
  local c = assert(config.load(env()))
  lu.assertEquals(c.public_url, "http://127.0.0.1:8080")
  lu.assertEquals(c.redirect_uris, { "http://127.0.0.1:8080/oauth/callback" })
  lu.assertEquals(c.connect_base, "https://connect.stripe.com")
  lu.assertEquals(c.api_base, "https://api.stripe.com")
  lu.assertEquals(c.state_ttl, 1800)
  lu.assertEquals(c.database, "sqlite:data/connect.db")
  lu.assertFalse(c.secure)
  lu.assertFalse(c.livemode)
  lu.assertNil(c.admin_token)
  lu.assertNil(c.webhook_secrets)
  lu.assertEquals(c.rate_limit, { burst = 30, per_minute = 30 })
  lu.assertNil(assert(config.load(env({ RATE_LIMIT = "off" }))).rate_limit)
  lu.assertEquals(assert(config.load(env({ RATE_LIMIT = "5/120" }))).rate_limit, { burst = 5, per_minute = 120 })
  local s = assert(config.load(env({ PUBLIC_URL = "https://p.example", REDIRECT_URIS = "https://p.example/a, https://p.example/b",
    STRIPE_WEBHOOK_SECRETS = "whsec_1,whsec_2", ADMIN_TOKEN = "5f1c9a7e3b2d4086e1f7a9c35b0d2e48", STATE_TTL = "60", DATABASE = "memory:" })))
  lu.assertTrue(s.secure)
  lu.assertEquals(s.redirect_uris, { "https://p.example/a", "https://p.example/b" })
  lu.assertEquals(s.webhook_secrets, { "whsec_1", "whsec_2" })
  lu.assertEquals(s.state_ttl, 60)
end

-- ADMIN_TOKEN's strength (finding 9 of issue 13: at least 128 bits, refused
-- at start-up below it).
function TestConfig.test_admin_token_strength_rows()
  local rows = {
    { "32 random hex characters", "5f1c9a7e3b2d4086e1f7a9c35b0d2e48", 128, true },
    { "31 hex characters", "5f1c9a7e3b2d4086e1f7a9c35b0d2e4", 124, false },
    { "22 random base64url characters", "kP3_x9Qm-Zr7Tb2Wc8Ya1L", 144, true },
    { "32 base64url characters (make run's)", "Yv9k2QpL7xR4mT8wZc1N6bH3sJ0dF5gA", 190, true },
    { "16 characters (the old minimum)", "abcdefghijklmnop", 75, false },
    { "one character repeated", ("t"):rep(64), 4, false },
    { "a short pattern repeated", ("ab"):rep(40), 8, false },
    { "digits only", "31415926535897932384626433832795", 106, false },
  }
  for _, row in ipairs(rows) do
    local bits = config.token_bits(row[2])
    lu.assertEquals(bits, row[3], row[1])
    local c = config.load(env({ ADMIN_TOKEN = row[2] }))
    lu.assertEquals(c ~= nil, row[4], row[1])
  end
end

function TestConfig.test_problem_rows()
  local secret = ("x"):rep(10)
  local rows = {
    { "nothing set", function() return nil end,
      { "STRIPE_SECRET_KEY is not set", "STRIPE_CLIENT_ID is not set", "PUBLIC_URL is not set", "STATE_SECRETS is not set" } },
    { "bad key", env({ STRIPE_SECRET_KEY = "pk_test_x" }), { "STRIPE_SECRET_KEY does not look like" } },
    { "bad client id", env({ STRIPE_CLIENT_ID = "acct_1" }), { "STRIPE_CLIENT_ID must be" } },
    { "bad public url", env({ PUBLIC_URL = "ftp://x" }), { "PUBLIC_URL must be" } },
    { "live over http", env({ STRIPE_SECRET_KEY = "sk_live_x1" }), { "PUBLIC_URL must be https" } },
    { "bad redirect", env({ REDIRECT_URIS = "notaurl" }), { "REDIRECT_URIS" } },
    { "short secret", env({ STATE_SECRETS = "k1:" .. secret }), { "STATE_SECRETS is invalid", "at least 32 bytes" } },
    { "bad ttl", env({ STATE_TTL = "abc" }), { "STATE_TTL" } },
    { "bad database", env({ DATABASE = "mysql://x" }), { "DATABASE must be", "postgres://" } },
    { "short admin token", env({ ADMIN_TOKEN = "short" }), { "ADMIN_TOKEN is too weak", "at least 128" } },
    { "31 hex characters", env({ ADMIN_TOKEN = "5f1c9a7e3b2d4086e1f7a9c35b0d2e4" }), { "ADMIN_TOKEN is too weak (about 124 bits" } },
    { "a long repeated token", env({ ADMIN_TOKEN = ("ab"):rep(40) }), { "ADMIN_TOKEN is too weak" } },
    { "missing policy", env({ POLICY = "/nonexistent/policy.lua" }), { "POLICY" } },
    { "bad connect base", env({ STRIPE_CONNECT_BASE = "connect.stripe.com" }), { "STRIPE_CONNECT_BASE" } },
    { "bad api base", env({ STRIPE_API_BASE = "api.stripe.com" }), { "STRIPE_API_BASE must be", "https://api.stripe.com" } },
    { "bad timeout", env({ STRIPE_TIMEOUT = "0" }), { "STRIPE_TIMEOUT must be", "between 0.1 and 300" } },
    { "ttl too long", env({ STATE_TTL = "86401" }), { "STATE_TTL must be", "between 1 and 86400" } },
    { "empty webhook secrets", env({ STRIPE_WEBHOOK_SECRETS = " , " }), { "STRIPE_WEBHOOK_SECRETS is set but lists no secret" } },
    { "public url with a path", env({ PUBLIC_URL = "https://p.example/app" }), { "PUBLIC_URL must be an origin without a path" } },
    { "redirect uri live over http", env({ STRIPE_SECRET_KEY = "sk_live_x1", PUBLIC_URL = "https://p.example",
      REDIRECT_URIS = "http://p.example/cb" }), { "REDIRECT_URIS", "must be https:// with a live key" } },
    { "duplicate key id", env({ STATE_SECRETS = "k1:" .. ("x"):rep(32) .. ",k1:" .. ("y"):rep(32) }),
      { "STATE_SECRETS is invalid", "appears twice" } },
    { "state secret without kid", env({ STATE_SECRETS = ("x"):rep(40) }), { "STATE_SECRETS is invalid", "kid:secret" } },
    { "rate limit not burst/rate", env({ RATE_LIMIT = "30" }), { "RATE_LIMIT must be BURST/PER_MINUTE" } },
    { "rate limit zero", env({ RATE_LIMIT = "0/30" }), { "RATE_LIMIT must be BURST/PER_MINUTE" } },
    { "rate limit zero rate", env({ RATE_LIMIT = "30/0" }), { "RATE_LIMIT must be BURST/PER_MINUTE" } },
    { "rate limit fraction", env({ RATE_LIMIT = "1.5/30" }), { "RATE_LIMIT must be BURST/PER_MINUTE" } },
    { "rate limit huge", env({ RATE_LIMIT = "10000000000/1" }), { "RATE_LIMIT must be BURST/PER_MINUTE" } },
  }
  for _, row in ipairs(rows) do
    local c, problems = config.load(row[2])
    lu.assertNil(c, row[1])
    local text = config.format_problems(problems)
    lu.assertStrContains(text, "refusing to start", false, row[1])
    for _, want in ipairs(row[3]) do lu.assertStrContains(text, want, false, row[1]) end
    lu.assertNotStrContains(text, secret, false, row[1] .. ": no secret in messages")
  end
end

-- Finding 7: STRIPE_CONNECT_BASE / STRIPE_API_BASE over http:// were
-- accepted with a live key (the key, codes and tokens then cross the
-- network in clear).  Refused at start-up for sk_live_ and rk_live_; a test
-- key keeps http:// (the fake Connect on loopback).
function TestConfig.test_finding_7_live_key_refuses_http_stripe_bases()
  local live = { STRIPE_SECRET_KEY = "sk_live_x1", PUBLIC_URL = "https://p.example" }
  for _, key in ipairs({ "sk_live_x1", "rk_live_x1" }) do
    for _, name in ipairs({ "STRIPE_CONNECT_BASE", "STRIPE_API_BASE" }) do
      local over = { STRIPE_SECRET_KEY = key, PUBLIC_URL = live.PUBLIC_URL, [name] = "http://127.0.0.1:12111",
        TOKEN_KEYS = "t1:" .. core.base64_encode(("k"):rep(32)) }
      local c, problems = config.load(env(over))
      lu.assertNil(c, key .. " " .. name)
      local text = config.format_problems(problems)
      lu.assertStrContains(text, name .. " must be https:// with a live key", false, key .. " " .. name)
      lu.assertNotStrContains(text, key, false, "the key is not echoed")
      -- https is fine
      over[name] = "https://stripe-proxy.internal"
      lu.assertNotNil(config.load(env(over)), key .. " " .. name .. " over https")
    end
  end
  local t = assert(config.load(env({ STRIPE_CONNECT_BASE = "http://127.0.0.1:12111", STRIPE_API_BASE = "http://127.0.0.1:12111" })))
  lu.assertEquals(t.connect_base, "http://127.0.0.1:12111")
  lu.assertEquals(t.api_base, "http://127.0.0.1:12111")
end

-- A webhook secret pasted into the wrong variable (an sk_… key) was
-- accepted and every webhook then failed verification; now it is refused,
-- naming the entry but never echoing it.
function TestConfig.test_webhook_secret_that_is_not_whsec_is_refused()
  local c, problems = config.load(env({ STRIPE_WEBHOOK_SECRETS = "whsec_ok1, sk_test_pastedkey" }))
  lu.assertNil(c)
  local text = config.format_problems(problems)
  lu.assertStrContains(text, "STRIPE_WEBHOOK_SECRETS: entry 2 is not a webhook signing secret")
  lu.assertNotStrContains(text, "pastedkey")
  lu.assertNotStrContains(text, "entry 1")
end

-- PUBLIC_URL=https://host/prefix was accepted, but every page link and
-- redirect is a root path (/connect, /connected) and the binding cookie is
-- Path=/, so behind a prefix the flow sent browsers off the app.
function TestConfig.test_public_url_with_a_path_is_refused()
  lu.assertNil(config.load(env({ PUBLIC_URL = "https://p.example/app/" })))
  lu.assertEquals(assert(config.load(env({ PUBLIC_URL = "https://p.example/" }))).public_url, "https://p.example")
end

-- Secrets from NAME_FILE (DESIGN: "Secrets come from the environment or
-- files"): read and trimmed; unreadable, empty or doubly-set ones are named.
function TestConfig.test_secrets_from_files()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  local function file(name, text)
    local f = assert(io.open(dir .. "/" .. name, "w")); f:write(text); f:close()
    return dir .. "/" .. name
  end
  local c = assert(config.load(env({ STRIPE_SECRET_KEY = false, STATE_SECRETS = false,
    STRIPE_SECRET_KEY_FILE = file("key", "sk_test_fromfile1\n"),
    STATE_SECRETS_FILE = file("state", "k9:" .. ("z"):rep(40) .. "\n"),
    ADMIN_TOKEN_FILE = file("admin", "Q2hlY2tzIGZvciB0aGUgdG9rZW4gZmlsZQ\n"),
    STRIPE_WEBHOOK_SECRETS_FILE = file("whsec", "whsec_one,whsec_two\n") })))
  lu.assertEquals(c.secret_key, "sk_test_fromfile1")
  lu.assertEquals(c.keyring.keys[1].kid, "k9")
  lu.assertEquals(c.admin_token, "Q2hlY2tzIGZvciB0aGUgdG9rZW4gZmlsZQ")
  lu.assertEquals(c.webhook_secrets, { "whsec_one", "whsec_two" })
  local rows = {
    { "missing file", env({ STATE_SECRETS = false, STATE_SECRETS_FILE = dir .. "/nope" }), "STATE_SECRETS_FILE: cannot read" },
    { "empty file", env({ STRIPE_SECRET_KEY = false, STRIPE_SECRET_KEY_FILE = file("empty", " \n") }),
      "STRIPE_SECRET_KEY_FILE: cannot read" },
    { "both set", env({ ADMIN_TOKEN = "5f1c9a7e3b2d4086e1f7a9c35b0d2e48", ADMIN_TOKEN_FILE = file("admin2", "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b") }),
      "ADMIN_TOKEN and ADMIN_TOKEN_FILE are both set" },
  }
  for _, row in ipairs(rows) do
    local bad, problems = config.load(row[2])
    lu.assertNil(bad, row[1])
    local text = config.format_problems(problems)
    lu.assertStrContains(text, row[3], false, row[1])
    lu.assertNotStrContains(text, "ccccc", false, row[1])
    -- one problem, one message: an unreadable file is not also "not set"
    lu.assertEquals(#problems, 1, row[1] .. ": " .. text)
  end
  -- only secrets have a _FILE form
  lu.assertEquals(assert(config.load(env({ PUBLIC_URL_FILE = file("pub", "https://x.example") }))).public_url,
    "http://127.0.0.1:8080")
  os.execute("rm -rf '" .. dir .. "'")
end

return { TestPolicy = TestPolicy, TestConfig = TestConfig }
