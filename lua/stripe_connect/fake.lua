-- stripe_connect.fake — an offline Stripe Connect (OAuth for Standard
-- accounts) for tests and local development, served by
-- `stripe-connect serve scripts/fake_connect.lua`.  It behaves as
-- doc/PROTOCOL.md §1–3 and §6 document: the authorize consent page, single-use
-- codes that expire after 5 minutes and revoke the connection when reused,
-- key-mode checks, refresh with an equal or narrower scope, deauthorize,
-- JSON error bodies, and signed `account.application.deauthorized` events.
--
-- State lives in memory, in the lua_State that loaded the app: run the fake
-- with `--workers 1` (with more workers each would hold its own codes).
--
-- This file holds the configuration, the constructor, the shared state
-- (Fake:reset), the clock and the route table; each endpoint family is a
-- module under lua/stripe_connect/fake/ whose methods are mixed into the
-- fake:
--   fake/oauth.lua      /oauth/authorize (consent page), /decide, /token,
--                       /deauthorize; the platform-key check, /__fake/requests
--   fake/v1.lua         what every /v1 call goes through: authentication,
--                       Stripe-Account, idempotency, /__fake/api_requests
--   fake/accounts.lua   /v1/account, /v1/accounts, /v1/account_links, the
--                       hosted onboarding page /setup/s/…
--   fake/customers.lua  /v1/customers
--   fake/webhooks.lua   signed events; /__fake/accounts/{acct}/disconnect,
--                       /__fake/events
--   fake/faults.lua     injected faults: /__fake/faults, /__fake/fail
--   fake/controls.lua   /__fake/ accounts, api_requests, objects, clock
--   fake/http.lua       the request and answer helpers they share
--
-- Test controls under /__fake/ (not Stripe's): requests log, accounts,
-- events, clock, injected faults (a status and/or a delay for the next calls
-- to a path) and reset.  See doc/reference.md "Fake Connect".
local util = require "stripe_connect.util"
local router = require "stripe_connect.router"
local http = require "stripe_connect.fake.http"

local M = {}

-- Seconds an authorization code (fake/oauth.lua) and an account link
-- (fake/accounts.lua) stay valid.
M.CODE_TTL = 300
M.ACCOUNT_LINK_TTL = 300

M.DEFAULTS = {
  client_id = "ca_fake_development_client",
  secret_key = "sk_test_fake_development_key",
  redirect_uris = { "http://127.0.0.1:8080/oauth/callback", "http://localhost:8080/oauth/callback" },
  webhook_secrets = { "whsec_fake_development_secret" },
  platform_name = "Fake Platform",
}

-- config_from_env([getenv]) -> config for M.new, from FAKE_CLIENT_ID,
-- FAKE_SECRET_KEY, FAKE_REDIRECT_URIS, FAKE_WEBHOOK_URL, FAKE_WEBHOOK_SECRETS
-- (comma lists), FAKE_PLATFORM_NAME and FAKE_ISSUED_LOG; unset or empty →
-- M.DEFAULTS (no issued log).
function M.config_from_env(getenv)
  getenv = getenv or os.getenv
  local function get(name)
    local v = getenv(name)
    if v ~= nil and v ~= "" then return v end
  end
  local uris, secrets = get("FAKE_REDIRECT_URIS"), get("FAKE_WEBHOOK_SECRETS")
  return {
    client_id = get("FAKE_CLIENT_ID") or M.DEFAULTS.client_id,
    secret_key = get("FAKE_SECRET_KEY") or M.DEFAULTS.secret_key,
    redirect_uris = uris and util.split_list(uris) or util.copy(M.DEFAULTS.redirect_uris),
    webhook_url = get("FAKE_WEBHOOK_URL"),
    webhook_secrets = secrets and util.split_list(secrets) or util.copy(M.DEFAULTS.webhook_secrets),
    platform_name = get("FAKE_PLATFORM_NAME") or M.DEFAULTS.platform_name,
    issued_log = get("FAKE_ISSUED_LOG"),
  }
end

local CONFIG_KEYS = {
  client_id = true, secret_key = true, redirect_uris = true, webhook_url = true,
  webhook_secrets = true, platform_name = true, clock = true, http_request = true, sleep = true,
  issued_log = true,
}

local Fake = {}
Fake.__index = Fake

-- new(config) -> fake.  config: client_id, secret_key (sk_test_… or
-- sk_live_…: sets the mode; the same key with the other prefix is the
-- platform's key in the other mode), redirect_uris (list), webhook_url,
-- webhook_secrets (list), platform_name; for specs: clock (function → unix
-- seconds), http_request and sleep (default the core's), issued_log (a file
-- the fake appends every code and token it issues to, one a line: what the
-- secret scan of `make test` looks for in the logs).
function M.new(config)
  util.check_opts(config, CONFIG_KEYS, "fake.new")
  assert(type(config.client_id) == "string" and config.client_id:match("^ca_"),
    "fake.new: client_id must start with ca_")
  local mode, rest = (config.secret_key or ""):match("^sk_(%l+)_(.+)$")
  assert(mode == "test" or mode == "live", "fake.new: secret_key must start with sk_test_ or sk_live_")
  local self = setmetatable({ config = config, livemode = mode == "live" }, Fake)
  self.keys = { { key = "sk_test_" .. rest, livemode = false }, { key = "sk_live_" .. rest, livemode = true } }
  self:reset()
  return self
end

-- Forgets every code, connection, token, recorded request, event and fault,
-- and sets the clock back.
function Fake:reset()
  self.offset = 0
  self.codes, self.connections, self.tokens = {}, {}, {}
  self.requests, self.events, self.faults = {}, {}, {}
  -- /v1: platform-created accounts, objects per acting account, idempotent
  -- answers, account links, the API request log
  self.accounts, self.objects, self.idempotency, self.links, self.api_requests = {}, {}, {}, {}, {}
end

function Fake:now()
  return (self.config.clock or os.time)() + self.offset
end

-- Appends a code or token the fake issued to config.issued_log (when set).
function Fake:issued(value)
  local path = self.config.issued_log
  if not path then return value end
  local f = io.open(path, "ab")
  if f then
    f:write(value, "\n")
    f:close()
  end
  return value
end

-- The endpoint families' methods (see the list at the top); a name two of
-- them, or one of them and this file, define is an error.
for _, family in ipairs{ "oauth", "v1", "accounts", "customers", "webhooks", "faults", "controls" } do
  for name, method in pairs(require("stripe_connect.fake." .. family)) do
    assert(Fake[name] == nil, "stripe_connect.fake: " .. name .. " is defined twice")
    Fake[name] = method
  end
end

-- ------------------------------------------------------------ routing
-- routes() -> the app's routes: { METHOD, PATH (exact, or a Lua pattern
-- starting with ^), handler(req) } (captures in req.params, as
-- stripe_connect.router puts them).
function Fake:routes()
  local s = self
  return {
    { "GET", "/oauth/authorize", function(req) return s:authorize(req) end },
    { "POST", "/oauth/authorize/decide", function(req) return s:decide(req) end },
    { "POST", "/oauth/token", s:recorded("/oauth/token", Fake.token, { "grant_type", "code" }) },
    { "POST", "/oauth/deauthorize", s:recorded("/oauth/deauthorize", Fake.deauthorize,
                                               { "client_id", "stripe_user_id" }) },
    { "GET", "/__fake/requests", function() return http.list(s.requests) end },
    { "GET", "/__fake/accounts", function() return s:accounts_list() end },
    { "POST", "^/__fake/accounts/(acct_[%w_]+)/disconnect$", function(req) return s:disconnect(req, req.params[1]) end },
    { "GET", "/__fake/events", function() return s:events_list() end },
    { "GET", "/__fake/clock", function(req) return s:clock(req) end },
    { "POST", "/__fake/clock", function(req) return s:clock(req) end },
    { "POST", "/__fake/faults", function(req) return s:faults_control(req) end },
    { "DELETE", "/__fake/faults", function(req) return s:faults_control(req) end },
    { "POST", "/__fake/reset", function() s:reset(); return http.json(200, { reset = true }) end },
    { "POST", "/__fake/fail", function(req) return s:faults_control(req) end },
    { "DELETE", "/__fake/fail", function(req) return s:faults_control(req) end },
    { "GET", "/__fake/api_requests", function() return s:api_requests_list() end },
    { "GET", "/__fake/objects", function() return s:objects_list() end },
    { "POST", "^/__fake/accounts/(acct_[%w_]+)/complete$", function(req) return s:complete_account(req.params[1]) end },
    { "GET", "/v1/account", s:v1(Fake.v1_account) },
    { "POST", "/v1/accounts", s:v1(Fake.v1_accounts_create) },
    { "GET", "^/v1/accounts/(acct_[%w_]+)$", s:v1(Fake.v1_accounts_retrieve) },
    { "POST", "/v1/account_links", s:v1(Fake.v1_account_links) },
    { "POST", "/v1/customers", s:v1(Fake.v1_customers_create) },
    { "GET", "/v1/customers", s:v1(Fake.v1_customers_list) },
    { "GET", "^/v1/customers/(cus_[%w_]+)$", s:v1(Fake.v1_customers_retrieve) },
    { "GET", "^/setup/s/(%x+)$", function(req) return s:onboarding_page(req, req.params[1]) end },
    { "POST", "^/setup/s/(%x+)/submit$", function(req) return s:onboarding_submit(req, req.params[1]) end },
    { "*", "^/v1/", http.unknown },
  }
end

-- handler() -> function(req) -> res, routing routes() with
-- stripe_connect.router: unknown path 404, known path with another method
-- 405 (JSON answers, as Stripe's; HEAD is not GET here).
function Fake:handler()
  local dispatch = router.new(self:routes(), {
    head_is_get = false,
    not_found = http.unknown,
    method_not_allowed = function(req)
      return http.api_error(405, "Method " .. req.method .. " not allowed for " .. req.path .. ".")
    end,
  })
  return dispatch
end

return M
