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
-- Descriptions Stripe documents are used verbatim; the others (wrong mode,
-- expired code, wider scope) are the fake's own wording.  Statuses follow the
-- SDK fixtures: 400, and 401 for invalid_client.  The secret key is never
-- recorded or echoed; codes are echoed only where Stripe does ("Authorization
-- code does not exist: …") and in the /__fake/requests log.
--
-- Test controls under /__fake/ (not Stripe's): requests log, accounts,
-- events, clock, injected faults (a status and/or a delay for the next calls
-- to a path) and reset.  See doc/reference.md "Fake Connect".
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local util = require "stripe_connect.util"
local webhook = require "stripe_connect.webhook"
local webhook_events = require "stripe_connect.webhook_events"
local router = require "stripe_connect.router"

local M = {}

M.CODE_TTL = 300

M.DEFAULTS = {
  client_id = "ca_fake_development_client",
  secret_key = "sk_test_fake_development_key",
  redirect_uris = { "http://127.0.0.1:8080/oauth/callback", "http://localhost:8080/oauth/callback" },
  webhook_secrets = { "whsec_fake_development_secret" },
  platform_name = "Fake Platform",
}

local SCOPE_RANK = { read_only = 1, read_write = 2 }
local DENIED = "The user denied your request"
local NO_AUTH = "No authentication was provided. Send your secret API key using the " ..
  "Authorization header, or as a client_secret POST parameter."
local REUSED = "This authorization code has already been used. All tokens issued with " ..
  "this code have been revoked."

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

local function random_id(prefix, bytes)
  return prefix .. core.hex_encode(core.random_bytes(bytes))
end

local function mode_name(livemode) return livemode and "live" or "test" end

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

-- ------------------------------------------------------------ answers
local json = util.json_response

local function oauth_error(status, code, description, state)
  return json(status, { error = code, error_description = description, state = state })
end

local function api_error(status, message, code)
  return json(status, { error = { type = "invalid_request_error", message = message, code = code } })
end

-- {"data": [...]} even when empty (cjson would encode {} for an empty table).
local function list(items)
  local parts = {}
  for i, item in ipairs(items) do parts[i] = cjson.encode(item) end
  return json(200, '{"data":[' .. table.concat(parts, ",") .. "]}")
end

-- ------------------------------------------------------ request helpers
local function form_of(req)
  local t = core.parse_form(req.body or "")
  return t
end

local function args_of(req)
  return req.args or core.parse_query(req.query or "") or {}
end

-- The one value of a parameter; a repeated one is an error.
local function single(params, name)
  local v = params[name]
  if type(v) == "table" then return nil, "Duplicate parameter: " .. name end
  return v
end

-- key from Basic (the user part), Bearer, or the client_secret field;
-- returns key | nil, and the method used.
local function presented_key(req, form)
  local auth = req.headers and req.headers["authorization"]
  if auth then
    local scheme, value = auth:match("^(%S+)%s+(%S+)%s*$")
    scheme = scheme and scheme:lower()
    if scheme == "basic" then
      local decoded = core.base64_decode(value)
      return decoded and decoded:match("^([^:]*)"), "basic"
    elseif scheme == "bearer" then
      return value, "bearer"
    end
  end
  local secret = form and form.client_secret
  if type(secret) == "string" and secret ~= "" then return secret, "client_secret" end
  return nil, "none"
end

-- Checks the platform key: answers its livemode, or nil and a 401 answer.
function Fake:authenticate(req, form)
  local key, method = presented_key(req, form)
  if not key or key == "" then return nil, oauth_error(401, "invalid_client", NO_AUTH), method end
  for _, k in ipairs(self.keys) do
    if core.equal(key, k.key) then return k.livemode, nil, method end
  end
  return nil, oauth_error(401, "invalid_client", "Invalid API key provided."), method
end

-- Consumes the first injected fault for path: sleeps its delay, then answers
-- its status (nil when the fault is a delay only or none is queued).
function Fake:fault(path)
  for i, f in ipairs(self.faults) do
    if f.path == "*" or f.path == path then
      f.count = f.count - 1
      if f.count <= 0 then table.remove(self.faults, i) end
      if f.delay and f.delay > 0 then (self.config.sleep or core.sleep)(f.delay) end
      if f.status then
        return json(f.status, f.body or { error = { type = "api_error", message = "Injected fault." } })
      end
      return nil
    end
  end
end

-- --------------------------------------------------- authorize (§1)
-- Validates the authorize parameters; answers the normalized values or nil
-- and the JSON error answer (never a redirect).
function Fake:check_authorize(params)
  local state, err = single(params, "state")
  if err then return nil, oauth_error(400, "invalid_request", err) end
  local v = {}
  for _, name in ipairs{ "client_id", "response_type", "scope", "redirect_uri" } do
    v[name], err = single(params, name)
    if err then return nil, oauth_error(400, "invalid_request", err, state) end
  end
  v.state = state
  if not v.response_type or v.response_type == "" then
    return nil, oauth_error(400, "invalid_request", "Missing response_type parameter.", state)
  elseif v.response_type ~= "code" then
    return nil, oauth_error(400, "unsupported_response_type", "Only 'code' response_type is supported, but '" ..
      v.response_type .. "' was provided", state)
  elseif not v.client_id or v.client_id == "" then
    return nil, oauth_error(400, "invalid_request", "Missing client_id parameter.", state)
  elseif v.client_id ~= self.config.client_id then
    return nil, oauth_error(400, "invalid_request", "No application matches the client_id " .. v.client_id .. ".", state)
  end
  v.scope = (v.scope == nil or v.scope == "") and "read_only" or v.scope
  if not SCOPE_RANK[v.scope] then
    return nil, oauth_error(400, "invalid_scope", "Invalid scope provided: " .. v.scope .. ".", state)
  end
  if v.redirect_uri == nil or v.redirect_uri == "" then
    v.redirect_uri = self.config.redirect_uris[1]
    if not v.redirect_uri then
      return nil, oauth_error(400, "invalid_redirect_uri", "This application has no redirect_uri configured.", state)
    end
  else
    local known = false
    for _, uri in ipairs(self.config.redirect_uris) do known = known or uri == v.redirect_uri end
    if not known then
      return nil, oauth_error(400, "invalid_redirect_uri", "Invalid redirect URI '" .. v.redirect_uri ..
        "'. Ensure this uri exactly matches one of the uris specified in your application settings", state)
    end
  end
  if self.livemode and not v.redirect_uri:match("^https://") then
    return nil, oauth_error(400, "invalid_redirect_uri", "The live mode redirect_uri must use HTTPS.", state)
  end
  return v
end


local function values_of(v)
  return type(v) == "table" and v or { v }
end

local PAGE_STYLE = [[
body{font:16px/1.5 system-ui,sans-serif;background:#f6f9fc;color:#1a1f36;margin:0}
main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 2px 8px #0002}
.badge{display:inline-block;background:#ffe8a3;padding:.1rem .5rem;border-radius:4px;font-size:.8rem}
dt{font-weight:600;margin-top:.6rem}dd{margin:0}code{font-size:.9rem;word-break:break-all}
table{border-collapse:collapse;margin:.5rem 0}td{border-top:1px solid #e3e8ee;padding:.2rem .6rem .2rem 0;overflow-wrap:anywhere}
label{display:block;margin:1rem 0}input[type=text]{width:100%;padding:.4rem;box-sizing:border-box}
button{font:inherit;padding:.5rem 1.2rem;margin-right:.5rem;border-radius:4px;border:1px solid #635bff;cursor:pointer}
button[value=approve]{background:#635bff;color:#fff}button[value=deny]{background:#fff;color:#635bff}
]]

local SCOPE_TEXT = {
  read_write = "Read and write: view and change your account's data, and create charges on your behalf.",
  read_only = "Read only: view your account's data (extensions only).",
}

-- The consent page: platform, scope, mode, redirect, prefilled fields, and
-- Approve / Deny posting every authorize parameter back to /decide.
function Fake:consent_page(v, params)
  local h = util.html
  local prefill, others, hidden = {}, {}, {}
  for _, name in ipairs(util.sorted_keys(params)) do
    for _, value in ipairs(values_of(params[name])) do
      hidden[#hidden + 1] = string.format('<input type="hidden" name="%s" value="%s">', h(name), h(value))
      local field = name:match("^stripe_user%[([^%]]+)%]$")
      if field then
        prefill[#prefill + 1] = string.format("<tr><td>%s</td><td>%s</td></tr>", h(field), h(value))
      elseif not v[name] and name ~= "response_type" then
        others[#others + 1] = string.format("<tr><td>%s</td><td>%s</td></tr>", h(name), h(value))
      end
    end
  end
  local function table_or(rows, none)
    return #rows > 0 and ("<table>" .. table.concat(rows) .. "</table>") or ("<p>" .. none .. "</p>")
  end
  local platform = self.config.platform_name or self.config.client_id
  local body = table.concat{
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>Connect ", h(platform), " — fake Stripe Connect</title><style>", PAGE_STYLE, "</style></head>\n",
    '<body><main><p class="badge">Fake Stripe Connect — offline, ', h(mode_name(self.livemode)), " mode</p>",
    "<h1>", h(platform), " wants to connect to your Stripe account</h1><dl>",
    "<dt>Platform</dt><dd>", h(platform), " (<code>", h(v.client_id), "</code>)</dd>",
    "<dt>Scope</dt><dd><code>", h(v.scope), "</code> — ", h(SCOPE_TEXT[v.scope]), "</dd>",
    "<dt>Returns to</dt><dd><code>", h(v.redirect_uri), "</code></dd></dl>",
    "<h2>Prefilled fields</h2>", table_or(prefill, "None."),
    #others > 0 and ("<h2>Other parameters</h2>" .. table_or(others, "")) or "",
    '<form method="post" action="/oauth/authorize/decide">', table.concat(hidden),
    '<label>Account to connect (optional: blank connects a new account) ',
    '<input type="text" name="account" placeholder="acct_…" pattern="acct_[A-Za-z0-9]+" autocomplete="off"></label>',
    '<button type="submit" name="decision" value="approve">Approve</button>',
    '<button type="submit" name="decision" value="deny">Deny</button>',
    "</form></main></body></html>\n",
  }
  return {
    status = 200,
    headers = {
      ["Content-Type"] = "text/html; charset=utf-8",
      ["Cache-Control"] = "no-store",
      ["X-Frame-Options"] = "DENY",
      ["Referrer-Policy"] = "no-referrer",
      ["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    },
    body = body,
  }
end

-- GET /oauth/authorize
function Fake:authorize(req)
  local params = args_of(req)
  local v, answer = self:check_authorize(params)
  if not v then return answer end
  return self:consent_page(v, params)
end

-- with_query(uri, fields) -> uri with the fields (util.encode_fields) added
-- to its query.
local function with_query(uri, fields)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. util.encode_fields(fields)
end

-- POST /oauth/authorize/decide: approve → a fresh single-use code;
-- deny → error=access_denied.  Both 302 to the redirect_uri.
function Fake:decide(req)
  local form = form_of(req)
  if not form then return oauth_error(400, "invalid_request", "Malformed form body.") end
  local v, answer = self:check_authorize(form)
  if not v then return answer end
  local decision, account = single(form, "decision"), single(form, "account")
  local location
  if decision == "deny" then
    location = with_query(v.redirect_uri, { { "error", "access_denied" },
      { "error_description", DENIED }, { "state", v.state } })
  elseif decision == "approve" then
    if account == nil or account == "" then
      account = random_id("acct_", 8)
    elseif not account:match("^acct_%w+$") or #account > 64 then
      return oauth_error(400, "invalid_request", "account must look like acct_…", v.state)
    end
    local code = self:issued(random_id("ac_", 16))
    self.codes[code] = { account = account, scope = v.scope, livemode = self.livemode,
                         expires_at = self:now() + M.CODE_TTL }
    location = with_query(v.redirect_uri, { { "scope", v.scope }, { "code", code }, { "state", v.state } })
  else
    return oauth_error(400, "invalid_request", "decision must be approve or deny", v.state)
  end
  return { status = 302, headers = { ["Location"] = location, ["Cache-Control"] = "no-store",
    ["Content-Type"] = "text/plain; charset=utf-8" }, body = "Redirecting\n" }
end

-- ------------------------------------------------------ token (§2)
-- Ends a connection: every token issued to it is revoked.
function Fake:revoke(account)
  local c = self.connections[account]
  if c then c.connected = false end
  for _, t in pairs(self.tokens) do
    if t.account == account then t.revoked = true end
  end
end

-- Issues an access token for (account, scope, livemode), revoking the
-- previous live one with the same scope and mode; answers the token body.
function Fake:issue(account, scope, livemode, refresh_token)
  for _, t in pairs(self.tokens) do
    if t.kind == "access" and t.account == account and t.scope == scope and t.livemode == livemode then
      t.revoked = true
    end
  end
  local prefix = mode_name(livemode)
  local access = self:issued(random_id("sk_" .. prefix .. "_", 16))
  self.tokens[access] = { kind = "access", account = account, scope = scope, livemode = livemode }
  return {
    access_token = access, livemode = livemode, refresh_token = refresh_token, scope = scope,
    stripe_publishable_key = "pk_" .. prefix .. "_" .. core.hex_encode(core.random_bytes(16)),
    stripe_user_id = account, token_type = "bearer",
  }
end

function Fake:exchange_code(form, key_livemode, rec)
  local code = rec.code
  if not code or code == "" then
    return oauth_error(400, "invalid_request", "No authorization code provided")
  end
  local c = self.codes[code]
  if not c then
    return oauth_error(400, "invalid_grant", "Authorization code does not exist: " .. code)
  end
  rec.stripe_user_id = c.account
  if c.used then
    self:revoke(c.account)
    return oauth_error(400, "invalid_grant", REUSED)
  elseif self:now() >= c.expires_at then
    return oauth_error(400, "invalid_grant", "Authorization code expired: " .. code)
  elseif key_livemode ~= c.livemode then
    return oauth_error(400, "invalid_grant", "This authorization code was issued in " .. mode_name(c.livemode) ..
      " mode, but a " .. mode_name(key_livemode) .. " mode API key was used.")
  end
  c.used = true
  local refresh = self:issued(random_id("rt_", 24))
  self.tokens[refresh] = { kind = "refresh", account = c.account, scope = c.scope, livemode = c.livemode }
  self.connections[c.account] = { account = c.account, scope = c.scope, livemode = c.livemode, connected = true }
  return json(200, self:issue(c.account, c.scope, c.livemode, refresh))
end

function Fake:refresh(form, key_livemode, rec)
  local refresh, scope = single(form, "refresh_token"), single(form, "scope")
  if not refresh or refresh == "" then
    return oauth_error(400, "invalid_request", "No refresh_token provided")
  end
  local t = self.tokens[refresh]
  if not t or t.kind ~= "refresh" or t.revoked then
    return oauth_error(400, "invalid_grant", "Invalid refresh token: it does not exist or has been revoked.")
  end
  rec.stripe_user_id, rec.scope = t.account, scope
  if scope ~= nil and scope ~= "" then
    if not SCOPE_RANK[scope] then
      return oauth_error(400, "invalid_scope", "Invalid scope provided: " .. scope .. ".")
    elseif SCOPE_RANK[scope] > SCOPE_RANK[t.scope] then
      return oauth_error(400, "invalid_scope", "Invalid scope provided: " .. scope ..
        ". The refresh token grants " .. t.scope .. ".")
    end
  else
    scope = t.scope
  end
  -- A live connection's refresh token mints test tokens with a test key.
  if key_livemode ~= t.livemode and (key_livemode or not t.livemode) then
    return oauth_error(400, "invalid_grant", "This refresh token was issued in " .. mode_name(t.livemode) ..
      " mode, but a " .. mode_name(key_livemode) .. " mode API key was used.")
  end
  return json(200, self:issue(t.account, scope, key_livemode, refresh))
end

-- POST /oauth/token (authenticated by Fake:recorded)
function Fake:token(form, key_livemode, rec)
  local grant_type = rec.grant_type
  if grant_type == nil or grant_type == "" then
    return oauth_error(400, "invalid_request", "No grant type specified")
  elseif grant_type == "authorization_code" then
    return self:exchange_code(form, key_livemode, rec)
  elseif grant_type == "refresh_token" then
    return self:refresh(form, key_livemode, rec)
  end
  return oauth_error(400, "unsupported_grant_type", "Unsupported grant type: " .. grant_type ..
    ". The only currently supported types are authorization_code and refresh_token.")
end

-- -------------------------------------------------- deauthorize (§3)
function Fake:deauthorize(form, key_livemode, rec)
  local client_id, account = rec.client_id, rec.stripe_user_id
  if not client_id or client_id == "" or not account or account == "" then
    return oauth_error(400, "invalid_request", "No client_id or stripe_user_id parameter provided")
  elseif client_id ~= self.config.client_id then
    return oauth_error(401, "invalid_client", "No such application: " .. client_id)
  elseif key_livemode ~= self.livemode then
    return oauth_error(401, "invalid_client", "The " .. mode_name(key_livemode) ..
      " mode API key does not match the mode of " .. client_id .. " (" .. mode_name(self.livemode) .. ").")
  end
  local c = self.connections[account]
  if not c or not c.connected then
    return oauth_error(401, "invalid_client", "This application is not connected to stripe account " ..
      account .. ", or that account does not exist.")
  end
  self:revoke(account)
  return json(200, { stripe_user_id = account })
end

-- Wraps an OAuth endpoint: injected faults, the form, the platform key
-- (401 before inner runs), and the requests log entry `rec` — path, auth
-- method, the `logged` form fields, the answered status, and whatever inner
-- adds.  inner(self, form, key_livemode, rec) -> answer.
function Fake:recorded(path, inner, logged)
  return function(req)
    local rec = { path = path }
    local answer = self:fault(path)
    local form = not answer and form_of(req)
    if answer then
      rec.fault = true
    elseif not form then
      answer = oauth_error(400, "invalid_request", "Malformed form body.")
    else
      for _, name in ipairs(logged) do
        local v = single(form, name)
        rec[name] = type(v) == "string" and v or nil
      end
      local key_livemode, denied, method = self:authenticate(req, form)
      rec.auth = method
      answer = denied or inner(self, form, key_livemode, rec)
    end
    rec.status = answer.status
    self.requests[#self.requests + 1] = rec
    return answer
  end
end

-- ------------------------------------------- webhook events (§6)
-- The account.application.deauthorized event for account, signed with every
-- configured secret and POSTed to webhook_url.  Answers the event and the
-- delivery outcome.
function Fake:send_deauthorized(account, opts)
  return self:send_event(webhook.DEAUTHORIZED, account,
    { id = self.config.client_id, object = "application", name = self.config.platform_name or cjson.null }, opts)
end

-- send_event(type, account, object, opts) — one event about `account`,
-- signed with every configured secret and POSTed to webhook_url; answers
-- the event and the delivery outcome (recorded in /__fake/events).
function Fake:send_event(event_type, account, object, opts)
  opts = opts or {}
  local payload, event = webhook_events.event{
    type = event_type, account = account, id = opts.event_id, created = self:now(),
    livemode = self.livemode, object = object,
  }
  local delivery = { url = self.config.webhook_url }
  if not self.config.webhook_url then
    delivery.skipped = "FAKE_WEBHOOK_URL is not set"
  else
    local headers = { ["Content-Type"] = "application/json; charset=utf-8",
                      ["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)" }
    local secrets = self.config.webhook_secrets or {}
    if #secrets > 0 then
      headers["Stripe-Signature"] = webhook.sign(payload, secrets, { timestamp = opts.timestamp or os.time() })
    end
    local res, message, code = (self.config.http_request or core.http_request){
      method = "POST", url = self.config.webhook_url, headers = headers, body = payload, timeout = 10,
    }
    if res then
      delivery.status = res.status
    else
      delivery.error, delivery.code = message, code
    end
  end
  self.events[#self.events + 1] = { event = event, delivery = delivery }
  return event, delivery
end

-- POST /__fake/accounts/{acct}/disconnect  (form or query: event_id,
-- timestamp, force=true to send the event for an account not connected)
function Fake:disconnect(req, account)
  local form = form_of(req) or {}
  local args = args_of(req)
  local function param(name) return single(form, name) or single(args, name) end
  local c = self.connections[account]
  if (not c or not c.connected) and param("force") ~= "true" then
    return json(404, { error = "not_connected", error_description = account .. " is not connected to " ..
      self.config.client_id .. " (pass force=true to send the event anyway)." })
  end
  local timestamp = tonumber(param("timestamp") or "")
  local event_id = param("event_id")
  if event_id and not event_id:match("^evt_[%w_]+$") then
    return json(400, { error = "invalid_request", error_description = "event_id must look like evt_…" })
  end
  if timestamp and not (timestamp >= 0 and timestamp <= webhook.MAX_TIMESTAMP) then
    return json(400, { error = "invalid_request", error_description = "timestamp must be Unix seconds (0 to 15 digits)" })
  end
  self:revoke(account)
  local event, delivery = self:send_deauthorized(account, { event_id = event_id, timestamp = timestamp })
  return json(200, { stripe_user_id = account, event = event, delivery = delivery })
end

-- ----------------------------------------------------- test controls
function Fake:clock(req)
  if req.method == "POST" then
    local form = form_of(req) or {}
    local advance = tonumber(single(form, "advance") or single(args_of(req), "advance") or "")
    if not advance or advance ~= advance or advance == math.huge or advance == -math.huge then
      return json(400, { error = "invalid_request", error_description = "advance=SECONDS is required" })
    end
    self.offset = self.offset + advance
  end
  return json(200, { now = self:now(), offset = self.offset })
end

-- POST /__fake/faults: path (default "*": any OAuth endpoint), status
-- (answered instead of the real answer), delay (seconds slept first),
-- count (default 1), body.  DELETE clears them.
function Fake:faults_control(req)
  if req.method == "DELETE" then
    self.faults = {}
    return json(200, { faults = 0 })
  end
  local form = form_of(req)
  if not form then return json(400, { error = "invalid_request", error_description = "Malformed form body." }) end
  local f = {
    path = single(form, "path") or "*",
    status = tonumber(single(form, "status") or ""),
    delay = tonumber(single(form, "delay") or ""),
    count = tonumber(single(form, "count") or "1"),
    body = single(form, "body"),
    when = single(form, "when"),
    should_retry = single(form, "should_retry"),
  }
  local paths = { ["*"] = true, ["/oauth/token"] = true, ["/oauth/deauthorize"] = true }
  local v1 = f.path:match("^/v1/[%w_/%-]*%*?$") ~= nil
  if (f.when and (not v1 or (f.when ~= "before" and f.when ~= "after"))) or
     (f.should_retry and f.should_retry ~= "true" and f.should_retry ~= "false") then
    return json(400, { error = "invalid_request", error_description = "when (before|after) and should_retry " ..
      "(true|false) apply to /v1 paths only" })
  end
  if not (paths[f.path] or v1) or (f.status and (f.status < 100 or f.status > 599 or f.status % 1 ~= 0)) or
     (f.delay and (f.delay < 0 or f.delay > 120)) or not f.count or f.count < 1 or
     (not f.status and not f.delay) then
    return json(400, { error = "invalid_request",
      error_description = "give status (100-599) and/or delay (0-120 s); count >= 1; " ..
        "path *, /oauth/token, /oauth/deauthorize, or a /v1/ path (a trailing * matches a prefix)" })
  end
  self.faults[#self.faults + 1] = f
  return json(200, { faults = #self.faults })
end

function Fake:accounts_list()
  local items = {}
  for _, name in ipairs(util.sorted_keys(self.connections)) do
    local c = self.connections[name]
    items[#items + 1] = { id = c.account, connected = c.connected, scope = c.scope, livemode = c.livemode }
  end
  return list(items)
end

function Fake:events_list()
  local items = {}
  for i, e in ipairs(self.events) do items[i] = { id = e.event.id, account = e.event.account,
    type = e.event.type, delivery = e.delivery } end
  return list(items)
end

-- ------------------------------------------------------------- /v1 (API)
-- The API calls a platform makes as itself or as a connected account:
-- /v1/account, /v1/accounts (create, retrieve), /v1/account_links (with a
-- hosted onboarding page under /setup/s/), /v1/customers (create, list,
-- retrieve).  Authentication as Stripe's: the platform key (Bearer or
-- Basic) with an optional `Stripe-Account`, or a connected account's access
-- token.  An account the platform is not connected to answers 403.  POSTs
-- honour `Idempotency-Key` per acting account: the same key and body answer
-- the first answer again (`Idempotent-Replayed: true`), the same key with
-- another body or path answers 400 idempotency_error.  Faults for /v1 paths
-- (/__fake/fail) may apply before the request runs or after it (the work is
-- done, the answer lost).

M.ACCOUNT_LINK_TTL = 300

local function stripe_error(status, etype, message, code, param)
  return json(status, { error = { type = etype, message = message, code = code, param = param,
    request_id = random_id("req_", 7) } })
end

local function no_access(target)
  return stripe_error(403, "invalid_request_error", "The provided key does not have access to account '" ..
    target .. "' (or that account does not exist). Application access may have been revoked.", "account_invalid")
end

-- v1_auth(req) -> acting account id (false: the platform), livemode | nil, answer
function Fake:v1_auth(req)
  local key = presented_key(req, nil)
  if not key then return nil, nil, stripe_error(401, "invalid_request_error", "You did not provide an API key.") end
  local target = req.headers and req.headers["stripe-account"]
  if target == "" then target = nil end
  local livemode
  for _, k in ipairs(self.keys) do
    if core.equal(key, k.key) then livemode = k.livemode end
  end
  if livemode == nil then
    local t = self.tokens[key]
    if not t or t.kind ~= "access" or t.revoked then
      return nil, nil, stripe_error(401, "invalid_request_error", "Invalid API Key provided.")
    end
    if target and target ~= t.account then return nil, nil, no_access(target) end
    target, livemode = t.account, t.livemode
  end
  if not target then return false, livemode end
  local c = self.connections[target]
  if not c or not c.connected then return nil, nil, no_access(target) end
  return target, livemode
end

-- The account object Stripe answers for id.
function Fake:account_object(id, livemode)
  local a = self.accounts[id]
  if a then
    local o = util.copy(a)
    o.object, o.type = "account", "standard"
    return o
  end
  return { id = id, object = "account", type = "standard", livemode = livemode,
           details_submitted = true, charges_enabled = true, payouts_enabled = true }
end

-- Consumes the first /v1 fault matching path at moment `when` ("before"
-- or "after"): sleeps its delay, then answers its status (nil: delay only).
function Fake:v1_fault(path, when)
  for i, f in ipairs(self.faults) do
    local match = f.path == path or (f.path:sub(-1) == "*" and path:sub(1, #f.path - 1) == f.path:sub(1, -2))
    if f.path:sub(1, 4) == "/v1/" and match and (f.when or "before") == when then
      f.count = f.count - 1
      if f.count <= 0 then table.remove(self.faults, i) end
      if f.delay and f.delay > 0 then (self.config.sleep or core.sleep)(f.delay) end
      if not f.status then return nil end
      local answer
      if f.body then
        answer = json(f.status, f.body)
      elseif f.status == 429 then
        answer = stripe_error(429, "invalid_request_error", "Too many requests hit the API too quickly.", "rate_limit")
      elseif f.status == 409 then
        answer = stripe_error(409, "invalid_request_error", "This object cannot be accessed right now " ..
          "because another API request or Stripe process is currently accessing it.", "lock_timeout")
      else
        answer = stripe_error(f.status, "api_error", "Injected fault.")
      end
      if f.should_retry then answer.headers["Stripe-Should-Retry"] = f.should_retry end
      return answer
    end
  end
end

-- v1(handler) -> a route handler: faults, authentication, idempotency,
-- and the /__fake/api_requests log.  handler(self, req, form, acting,
-- livemode, captures…) (the route's req.params).
function Fake:v1(handler)
  return function(req)
    local rec = { method = req.method, path = req.path, account = req.headers and req.headers["stripe-account"] }
    local key = req.headers and req.headers["idempotency-key"]
    rec.idempotency_key = key
    local answer = self:v1_fault(req.path, "before")
    if answer then rec.fault = true end
    local acting, livemode, denied
    if not answer then
      acting, livemode, denied = self:v1_auth(req)
      answer = denied
    end
    local slot, fingerprint
    if not answer and req.method == "POST" and key and key ~= "" then
      slot = (acting or "platform") .. "\0" .. key
      fingerprint = req.method .. " " .. req.path .. "\0" .. (req.body or "")
      local seen = self.idempotency[slot]
      if seen and seen.fingerprint ~= fingerprint then
        answer = stripe_error(400, "idempotency_error", "Keys for idempotent requests can only be used with the " ..
          "same parameters they were first used with. Try using a key other than '" .. key ..
          "' if you meant to execute a different request.")
      elseif seen then
        answer = util.copy(seen.answer)
        answer.headers["Idempotent-Replayed"] = "true"
        rec.replayed = true
      end
    end
    if not answer then
      local form = core.parse_form(req.body or "") or nil
      if not form then
        answer = stripe_error(400, "invalid_request_error", "Malformed form body.")
      else
        answer = handler(self, req, form, acting, livemode, (table.unpack or unpack)(req.params or {}))
      end
      answer.headers["Request-Id"] = random_id("req_", 7)
      if slot and answer.status < 500 then
        self.idempotency[slot] = { fingerprint = fingerprint, answer = util.copy(answer) }
      end
      if key and key ~= "" then answer.headers["Idempotency-Key"] = key end
      local late = self:v1_fault(req.path, "after")
      if late then answer, rec.fault = late, true end
    end
    if acting then answer.headers["Stripe-Account"] = acting end
    rec.status = answer.status
    self.api_requests[#self.api_requests + 1] = rec
    return answer
  end
end

local function v1_account(self, req, form, acting, livemode)
  if not acting then
    return json(200, { id = "acct_platform_fake", object = "account", type = "standard",
                       business_profile = { name = self.config.platform_name } })
  end
  return json(200, self:account_object(acting, livemode))
end

local function missing(param)
  return stripe_error(400, "invalid_request_error", "Missing required param: " .. param .. ".", "parameter_missing", param)
end

local function as_platform_only(acting)
  if acting then
    return stripe_error(400, "invalid_request_error",
      "This call must be made as the platform (without Stripe-Account).", nil)
  end
end

-- POST /v1/accounts: type=standard (+ email, country) -> a new account the
-- platform controls; it counts as connected until the platform or the user
-- ends it.
local function v1_accounts_create(self, req, form, acting, livemode)
  local refused = as_platform_only(acting)
  if refused then return refused end
  local account_type = single(form, "type")
  if not account_type or account_type == "" then return missing("type") end
  if account_type ~= "standard" then
    return stripe_error(400, "invalid_request_error", "The fake creates type=standard accounts only.", nil, "type")
  end
  local country = single(form, "country")
  if country ~= nil and not country:match("^%a%a$") then
    return stripe_error(400, "invalid_request_error", "Country '" .. country .. "' is unknown.", nil, "country")
  end
  local id = random_id("acct_", 8)
  self.accounts[id] = { id = id, email = single(form, "email"), country = (country or "US"):upper(),
    created = self:now(), livemode = livemode, details_submitted = false, charges_enabled = false,
    payouts_enabled = false }
  self.connections[id] = { account = id, scope = "read_write", livemode = livemode, connected = true, created = true }
  return json(200, self:account_object(id, livemode))
end

local function v1_accounts_retrieve(self, req, form, acting, livemode, id)
  if acting and acting ~= id then return no_access(id) end
  local c = self.connections[id]
  if not c or not c.connected then return no_access(id) end
  return json(200, self:account_object(id, livemode))
end

local function base_of(req)
  local host = req.headers and req.headers["host"] or "127.0.0.1"
  return "http://" .. host
end

local function http_url(v)
  return type(v) == "string" and v:match("^https?://[^%s]+$") ~= nil
end

-- POST /v1/account_links: account, refresh_url, return_url,
-- type=account_onboarding|account_update -> { object = "account_link", url,
-- created, expires_at }.  The link is single-use and expires after
-- M.ACCOUNT_LINK_TTL seconds; an expired or visited link sends the user to
-- refresh_url.
local function v1_account_links(self, req, form, acting, livemode)
  local refused = as_platform_only(acting)
  if refused then return refused end
  for _, name in ipairs{ "account", "type" } do
    if not single(form, name) or single(form, name) == "" then return missing(name) end
  end
  local account, link_type = single(form, "account"), single(form, "type")
  if link_type ~= "account_onboarding" and link_type ~= "account_update" then
    return stripe_error(400, "invalid_request_error", "Invalid type: must be one of account_onboarding or account_update",
      nil, "type")
  end
  for _, name in ipairs{ "refresh_url", "return_url" } do
    local v = single(form, name)
    if v == nil then
      if link_type == "account_onboarding" then return missing(name) end
    elseif not http_url(v) then
      return stripe_error(400, "invalid_request_error", "Not a valid URL", "url_invalid", name)
    end
  end
  local c = self.connections[account]
  if not c or not c.connected then return no_access(account) end
  if not self.accounts[account] then
    return stripe_error(400, "invalid_request_error", "You cannot create account links for accounts that " ..
      "connected through OAuth: the account is managed by its owner.", nil, "account")
  end
  local token = core.hex_encode(core.random_bytes(12))
  local now = self:now()
  self.links[token] = { account = account, refresh_url = single(form, "refresh_url"),
    return_url = single(form, "return_url"), expires_at = now + M.ACCOUNT_LINK_TTL }
  return json(200, { object = "account_link", created = now, expires_at = now + M.ACCOUNT_LINK_TTL,
    url = base_of(req) .. "/setup/s/" .. token })
end

local function customer_of(self, id, owner)
  local bucket = self.objects[owner]
  for _, c in ipairs(bucket and bucket.customers or {}) do
    if c.id == id then return c end
  end
end

local function v1_customers_create(self, req, form, acting, livemode)
  local owner = acting or "platform"
  self.objects[owner] = self.objects[owner] or { customers = {} }
  local metadata = {}
  for k, v in pairs(form) do
    local name = k:match("^metadata%[([^%]]+)%]$")
    if name then metadata[name] = type(v) == "table" and v[#v] or v end
  end
  local c = { id = random_id("cus_", 7), object = "customer", created = self:now(), livemode = livemode,
    email = single(form, "email") or cjson.null, name = single(form, "name") or cjson.null,
    description = single(form, "description") or cjson.null, metadata = metadata }
  table.insert(self.objects[owner].customers, c)
  local body = cjson.encode(c):gsub('"metadata":%[%]', '"metadata":{}')
  return json(200, body)
end

local function v1_customers_list(self, req, form, acting)
  local args = args_of(req)
  local limit = tonumber(single(args, "limit") or "10")
  if not limit or limit < 1 or limit > 100 or limit % 1 ~= 0 then
    return stripe_error(400, "invalid_request_error", "Invalid integer: limit must be between 1 and 100", nil, "limit")
  end
  local all = {}
  local bucket = self.objects[acting or "platform"]
  local customers = bucket and bucket.customers or {}
  for i = #customers, 1, -1 do all[#all + 1] = customers[i] end -- newest first
  local start = 1
  local after = single(args, "starting_after")
  if after then
    start = nil
    for i, c in ipairs(all) do if c.id == after then start = i + 1 end end
    if not start then
      return stripe_error(400, "invalid_request_error", "No such customer: '" .. after .. "'", "resource_missing",
        "starting_after")
    end
  end
  local parts = {}
  for i = start, math.min(#all, start + limit - 1) do
    parts[#parts + 1] = (cjson.encode(all[i]):gsub('"metadata":%[%]', '"metadata":{}'))
  end
  local has_more = start + limit - 1 < #all
  return json(200, '{"object":"list","url":"/v1/customers","has_more":' .. tostring(has_more) ..
    ',"data":[' .. table.concat(parts, ",") .. "]}")
end

local function v1_customers_retrieve(self, req, form, acting, livemode, id)
  local c = customer_of(self, id, acting or "platform")
  if not c then
    return stripe_error(404, "invalid_request_error", "No such customer: '" .. id .. "'", "resource_missing", "id")
  end
  return json(200, (cjson.encode(c):gsub('"metadata":%[%]', '"metadata":{}')))
end

-- ------------------------------------------ hosted onboarding (fake)
local function html_page(status, title, body)
  return { status = status, headers = {
      ["Content-Type"] = "text/html; charset=utf-8", ["Cache-Control"] = "no-store",
      ["X-Frame-Options"] = "DENY", ["Referrer-Policy"] = "no-referrer",
      ["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    }, body = table.concat{ '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
      "<title>", util.html(title), "</title><style>", PAGE_STYLE, "</style></head>\n<body><main>",
      body, "</main></body></html>\n" } }
end

local function redirect(location)
  return { status = 302, headers = { Location = location, ["Cache-Control"] = "no-store",
    ["Content-Type"] = "text/plain; charset=utf-8" }, body = "Redirecting\n" }
end

-- The link for token, or nil and the answer: 404 when unknown, a redirect to
-- refresh_url once it expired or was used.
function Fake:live_link(token, visiting)
  local l = self.links[token]
  if not l then return nil, html_page(404, "Link not found", "<h1>This link does not exist</h1>") end
  if self:now() >= l.expires_at or l.used or (visiting and l.visited) then
    l.used = true
    return nil, redirect(l.refresh_url or l.return_url)
  end
  return l
end

-- GET /setup/s/{token}: the onboarding page (Submit / Save for later).
function Fake:onboarding_page(req, token)
  local l, answer = self:live_link(token, true)
  if not l then return answer end
  l.visited = true
  local a = self.accounts[l.account]
  local h = util.html
  return html_page(200, "Set up your Stripe account — fake Stripe", table.concat{
    '<p class="badge">Fake Stripe Connect — offline, ', h(mode_name(self.livemode)), " mode</p>",
    "<h1>Set up your Stripe account for ", h(self.config.platform_name or self.config.client_id), "</h1><dl>",
    "<dt>Account</dt><dd><code>", h(l.account), "</code></dd>",
    "<dt>Email</dt><dd>", h(a and a.email or "—"), "</dd>",
    "<dt>Country</dt><dd>", h(a and a.country or "—"), "</dd></dl>",
    '<form method="post" action="/setup/s/', h(token), '/submit">',
    '<button type="submit" name="decision" value="submit">Submit</button>',
    '<button type="submit" name="decision" value="later">Save for later</button>',
    "</form>",
  })
end

-- POST /setup/s/{token}/submit: decision=submit completes the account
-- (details_submitted, charges_enabled, payouts_enabled; an account.updated
-- event) and sends the user to return_url; decision=later returns unchanged.
function Fake:onboarding_submit(req, token)
  local l, answer = self:live_link(token, false)
  if not l then return answer end
  l.used = true
  local form = form_of(req) or {}
  local a = self.accounts[l.account]
  if single(form, "decision") == "submit" and a then
    a.details_submitted, a.charges_enabled, a.payouts_enabled = true, true, true
    self:send_event("account.updated", l.account, self:account_object(l.account, a.livemode))
  end
  return redirect(l.return_url)
end

local function v1_unknown(req)
  return api_error(404, "Unrecognized request URL (" .. req.method .. ": " .. req.path .. ").")
end

-- /__fake/accounts/{acct}/complete: finish onboarding without the page.
function Fake:complete_account(account)
  local a = self.accounts[account]
  if not a then return json(404, { error = "not_found", error_description = account .. " was not created here" }) end
  a.details_submitted, a.charges_enabled, a.payouts_enabled = true, true, true
  local event, delivery = self:send_event("account.updated", account, self:account_object(account, a.livemode))
  return json(200, { account = self:account_object(account, a.livemode), event = event, delivery = delivery })
end

function Fake:api_requests_list()
  return list(self.api_requests)
end

-- GET /__fake/objects: how many objects each acting account holds.
function Fake:objects_list()
  local items = {}
  for _, owner in ipairs(util.sorted_keys(self.objects)) do
    local ids = {}
    for i, c in ipairs(self.objects[owner].customers) do ids[i] = c.id end
    items[#items + 1] = { account = owner, customers = #ids, customer_ids = ids }
  end
  return list(items)
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
    { "GET", "/__fake/requests", function() return list(s.requests) end },
    { "GET", "/__fake/accounts", function() return s:accounts_list() end },
    { "POST", "^/__fake/accounts/(acct_[%w_]+)/disconnect$", function(req) return s:disconnect(req, req.params[1]) end },
    { "GET", "/__fake/events", function() return s:events_list() end },
    { "GET", "/__fake/clock", function(req) return s:clock(req) end },
    { "POST", "/__fake/clock", function(req) return s:clock(req) end },
    { "POST", "/__fake/faults", function(req) return s:faults_control(req) end },
    { "DELETE", "/__fake/faults", function(req) return s:faults_control(req) end },
    { "POST", "/__fake/reset", function() s:reset(); return json(200, { reset = true }) end },
    { "POST", "/__fake/fail", function(req) return s:faults_control(req) end },
    { "DELETE", "/__fake/fail", function(req) return s:faults_control(req) end },
    { "GET", "/__fake/api_requests", function() return s:api_requests_list() end },
    { "GET", "/__fake/objects", function() return s:objects_list() end },
    { "POST", "^/__fake/accounts/(acct_[%w_]+)/complete$", function(req) return s:complete_account(req.params[1]) end },
    { "GET", "/v1/account", s:v1(v1_account) },
    { "POST", "/v1/accounts", s:v1(v1_accounts_create) },
    { "GET", "^/v1/accounts/(acct_[%w_]+)$", s:v1(v1_accounts_retrieve) },
    { "POST", "/v1/account_links", s:v1(v1_account_links) },
    { "POST", "/v1/customers", s:v1(v1_customers_create) },
    { "GET", "/v1/customers", s:v1(v1_customers_list) },
    { "GET", "^/v1/customers/(cus_[%w_]+)$", s:v1(v1_customers_retrieve) },
    { "GET", "^/setup/s/(%x+)$", function(req) return s:onboarding_page(req, req.params[1]) end },
    { "POST", "^/setup/s/(%x+)/submit$", function(req) return s:onboarding_submit(req, req.params[1]) end },
    { "*", "^/v1/", v1_unknown },
  }
end

-- handler() -> function(req) -> res, routing routes() with
-- stripe_connect.router: unknown path 404, known path with another method
-- 405 (JSON answers, as Stripe's; HEAD is not GET here).
function Fake:handler()
  local dispatch = router.new(self:routes(), {
    head_is_get = false,
    not_found = v1_unknown,
    method_not_allowed = function(req)
      return api_error(405, "Method " .. req.method .. " not allowed for " .. req.path .. ".")
    end,
  })
  return dispatch
end

return M
