-- stripe_connect.oauth — Stripe Connect OAuth (Standard accounts):
-- the authorize URL builder, and the token / refresh / deauthorize calls with
-- typed errors.  Facts: doc/PROTOCOL.md §1–4.
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local M = {}

M.DEFAULT_CONNECT_BASE = "https://connect.stripe.com"

-- ===================================================== authorize URL (§1)
-- authorize_url(opts) -> url  (url, dropped with invalid_prefill = "drop")
--
-- Builds the link that sends a user to Stripe to connect their account:
-- `{connect_base}/oauth/authorize?response_type=code&client_id=…&scope=…`
-- (`/express/oauth/authorize` with express = true).  Options (doc/PROTOCOL.md §1):
--   client_id               required (ca_…)
--   response_type           "code" (the default, and the only value Stripe has)
--   scope                   "read_write" (default, as stripe-node and Stripe's
--                           Standard guide do; Stripe's own default is
--                           read_only) or "read_only" (extensions only)
--   redirect_uri            absolute http(s) URL, no fragment, no user info;
--                           must match one registered with Stripe exactly
--   state                   the CSRF token Stripe echoes back (non-empty string)
--   stripe_landing          "login" or "register"
--   always_prompt           boolean
--   stripe_user             prefill table; the fields are M.STRIPE_USER_FIELDS
--   suggested_capabilities  array of capability names (Express only)
--   express                 boolean: the Express authorize path
--   connect_base            default M.DEFAULT_CONNECT_BASE; absolute http(s),
--                           may carry a path prefix, trailing "/" ignored
--   invalid_prefill         "error" (default) or "drop" (see below)
-- The query is in a fixed order: response_type, client_id, scope,
-- redirect_uri, state, stripe_landing, always_prompt, stripe_user[…] (in
-- M.STRIPE_USER_FIELDS order), suggested_capabilities[…].  Values are
-- percent-encoded (core.url_encode); the brackets stay literal, as stripe-node
-- and stripe-ruby send them.
--
-- Errors.  Every option is the program's choice, so misuse raises
-- ("authorize_url: client_id is required"): a missing client_id, an unknown
-- option or stripe_user field, a bad scope, redirect_uri or connect_base.
-- Prefill *values*, though, often come from the platform's user records (a
-- profile URL without a scheme, a 9-digit phone number).  Stripe silently
-- ignores invalid prefill values, so with invalid_prefill = "drop" such a
-- value is left out instead of raising, and its field name is listed in a
-- second result `dropped` (a sorted array, empty when nothing was dropped;
-- only in that mode, so the usual call answers the URL alone).  Dropping never hides a program bug in the structure: unknown
-- fields and a non-table stripe_user still raise.  Empty-string prefill values
-- are left out in both modes (nothing to prefill).  Errors never quote values.
local STRIPE_USER_FIELDS = {
  "email", "url", "country", "phone_number", "business_name", "business_type",
  "first_name", "last_name", "dob_day", "dob_month", "dob_year",
  "street_address", "city", "state", "zip", "physical_product", "product_description",
  "currency", "first_name_kana", "first_name_kanji", "last_name_kana", "last_name_kanji",
  "gender", "block_kana", "block_kanji", "building_kana", "building_kanji",
}
M.STRIPE_USER_FIELDS = STRIPE_USER_FIELDS

M.BUSINESS_TYPES = { "sole_prop", "corporation", "non_profit", "partnership", "llc" }

local AUTHORIZE_OPTIONS = {
  client_id = true, response_type = true, scope = true, redirect_uri = true, state = true,
  stripe_landing = true, always_prompt = true, stripe_user = true,
  suggested_capabilities = true, express = true, connect_base = true, invalid_prefill = true,
}

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local BUSINESS_TYPE_SET = set_of(M.BUSINESS_TYPES)

-- http_url_problem(s, what) -> nil when s is an absolute http(s) URL with a
-- host (no spaces or control characters, no user info), else a reason.
local function http_url_problem(s, what)
  if type(s) ~= "string" then return what .. " must be a string" end
  if s:find("[%c%s]") then return what .. " must not contain spaces or control characters" end
  local scheme, rest = s:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https") then
    return what .. " must be an absolute http or https URL"
  end
  local authority = rest:match("^[^/?#]*")
  if authority:find("@", 1, true) then return what .. " must not contain user information" end
  local host = authority:match("^%[[%x:.]+%]") or authority:match("^[%w.%-_~%%]+")
  local port = host and authority:sub(#host + 1)
  if not host or not (port == "" or port:match("^:%d+$")) then
    return what .. " must have a valid host"
  end
  return nil
end
M.http_url_problem = http_url_problem

local function text(v)
  if type(v) ~= "string" then return nil, "must be a string" end
  return v
end

local function pattern_check(pattern, reason)
  return function(v)
    if type(v) ~= "string" or not v:match(pattern) then return nil, reason end
    return v
  end
end

local function whole_number(lo, hi)
  return function(v)
    local n = v
    if type(v) == "string" and v:match("^%d+$") then n = tonumber(v) end
    if type(n) ~= "number" or n ~= math.floor(n) or n < lo or n > hi then
      return nil, string.format("must be a whole number from %d to %d", lo, hi)
    end
    return n
  end
end

-- Per-field value checks (doc/PROTOCOL.md §1): each answers the value to send, or
-- nil and a reason.  Light on purpose: Stripe ignores what it does not like.
local STRIPE_USER_CHECKS = {
  email = pattern_check("^[^%s@]+@[^%s@]+$", "must be an email address"),
  url = function(v)
    local problem = http_url_problem(v, "url")
    if problem then return nil, "must be an absolute http or https URL" end
    return v
  end,
  country = pattern_check("^%a%a$", "must be a two-letter country code"),
  phone_number = pattern_check("^%d%d%d%d%d%d%d%d%d%d$", "must be 10 digits only"),
  business_type = function(v)
    if not BUSINESS_TYPE_SET[v] then
      return nil, "must be one of " .. table.concat(M.BUSINESS_TYPES, ", ")
    end
    return v
  end,
  dob_day = whole_number(1, 31),
  dob_month = whole_number(1, 12),
  dob_year = whole_number(1000, 9999),
  state = pattern_check("^%a%a$", "must be a two-letter code"),
  physical_product = function(v)
    if v == true or v == "true" then return true end
    if v == false or v == "false" then return false end
    return nil, 'must be a boolean or "true"/"false"'
  end,
  currency = pattern_check("^%l%l%l$", "must be a lowercase three-letter ISO currency code"),
}

local STRIPE_USER_SET = set_of(STRIPE_USER_FIELDS)

-- Validates the stripe_user table.  Returns the prefill to send (field ->
-- value) and the sorted names dropped; raises (via the returned message) on
-- structural misuse or, in "error" mode, on an invalid value.
local function check_stripe_user(su, drop)
  if type(su) ~= "table" then return nil, nil, "stripe_user must be a table" end
  for k in pairs(su) do
    if type(k) ~= "string" or not STRIPE_USER_SET[k] then
      return nil, nil, "unknown stripe_user field '" .. tostring(k) .. "'"
    end
  end
  local out, dropped, problem = {}, {}, nil
  for _, k in ipairs(STRIPE_USER_FIELDS) do
    local v = su[k]
    if v ~= nil and v ~= "" then
      local value, reason = (STRIPE_USER_CHECKS[k] or text)(v)
      if value == nil then
        if not drop then problem = problem or ("stripe_user." .. k .. " " .. reason) end
        dropped[#dropped + 1] = k
      else
        out[k] = value
      end
    end
  end
  if problem then return nil, nil, problem end
  -- Cross-field rules: a phone number needs a country; dob needs all three.
  if out.phone_number and not out.country then
    if not drop then return nil, nil, "stripe_user.phone_number needs stripe_user.country" end
    out.phone_number = nil
    dropped[#dropped + 1] = "phone_number"
  end
  local dob = (out.dob_day and 1 or 0) + (out.dob_month and 1 or 0) + (out.dob_year and 1 or 0)
  if dob > 0 and dob < 3 then
    if not drop then
      return nil, nil, "stripe_user.dob_day, dob_month and dob_year must be given together"
    end
    for _, f in ipairs{ "dob_day", "dob_month", "dob_year" } do
      if out[f] ~= nil then out[f] = nil; dropped[#dropped + 1] = f end
    end
  end
  table.sort(dropped)
  return out, dropped
end

local function check_authorize_options(opts)
  if type(opts) ~= "table" then return "options table expected" end
  for k in pairs(opts) do
    if not AUTHORIZE_OPTIONS[k] then return "unknown option '" .. tostring(k) .. "'" end
  end
  if opts.client_id == nil or opts.client_id == "" then return "client_id is required" end
  if type(opts.client_id) ~= "string" or opts.client_id:find("[%c%s]") then
    return "client_id must be a string without spaces"
  end
  if opts.response_type ~= nil and opts.response_type ~= "code" then
    return 'response_type must be "code" (the only type Stripe supports)'
  end
  if opts.scope ~= nil and opts.scope ~= "read_write" and opts.scope ~= "read_only" then
    return 'scope must be "read_write" or "read_only"'
  end
  if opts.redirect_uri ~= nil then
    local problem = http_url_problem(opts.redirect_uri, "redirect_uri")
    if problem then return problem end
    if opts.redirect_uri:find("#", 1, true) then
      return "redirect_uri must not contain a fragment"
    end
  end
  if opts.state ~= nil and (type(opts.state) ~= "string" or opts.state == "") then
    return "state must be a non-empty string"
  end
  local landing = opts.stripe_landing
  if landing ~= nil and landing ~= "login" and landing ~= "register" then
    return 'stripe_landing must be "login" or "register"'
  end
  for _, k in ipairs{ "always_prompt", "express" } do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then return k .. " must be a boolean" end
  end
  local invalid = opts.invalid_prefill
  if invalid ~= nil and invalid ~= "error" and invalid ~= "drop" then
    return 'invalid_prefill must be "error" or "drop"'
  end
  local caps = opts.suggested_capabilities
  if caps ~= nil then
    if type(caps) ~= "table" then return "suggested_capabilities must be an array of strings" end
    local n = 0
    for _ in pairs(caps) do n = n + 1 end
    for i = 1, n do
      if type(caps[i]) ~= "string" or caps[i] == "" then
        return "suggested_capabilities must be an array of strings"
      end
    end
    if not opts.express then
      return "suggested_capabilities is Express only (set express = true)"
    end
  end
  if opts.connect_base ~= nil then
    local problem = http_url_problem(opts.connect_base, "connect_base")
    if problem then return problem end
    if opts.connect_base:find("[?#]") then
      return "connect_base must not have a query or fragment"
    end
  end
  return nil
end

function M.authorize_url(opts)
  local problem = check_authorize_options(opts)
  if problem then error("authorize_url: " .. problem, 2) end
  local prefill, dropped = {}, {}
  if opts.stripe_user ~= nil then
    prefill, dropped, problem = check_stripe_user(opts.stripe_user, opts.invalid_prefill == "drop")
    if problem then error("authorize_url: " .. problem, 2) end
  end

  local parts = {}
  local function add(name, value)
    if value ~= nil then parts[#parts + 1] = core.form_encode{ [name] = value } end
  end
  add("response_type", opts.response_type or "code")
  add("client_id", opts.client_id)
  add("scope", opts.scope or "read_write")
  add("redirect_uri", opts.redirect_uri)
  add("state", opts.state)
  add("stripe_landing", opts.stripe_landing)
  add("always_prompt", opts.always_prompt)
  for _, field in ipairs(STRIPE_USER_FIELDS) do
    if prefill[field] ~= nil then add("stripe_user", { [field] = prefill[field] }) end
  end
  if opts.suggested_capabilities and #opts.suggested_capabilities > 0 then
    add("suggested_capabilities", opts.suggested_capabilities)
  end

  local base = (opts.connect_base or M.DEFAULT_CONNECT_BASE):gsub("/+$", "")
  local path = opts.express and "/express/oauth/authorize" or "/oauth/authorize"
  local url = base .. path .. "?" .. table.concat(parts, "&")
  if opts.invalid_prefill == "drop" then return url, dropped end
  return url
end

-- ============================================ token / refresh / deauthorize
-- POST {connect_base}/oauth/token and /oauth/deauthorize (doc/PROTOCOL.md §2–3).
--
-- Every call takes one options table:
--   secret_key       the platform's sk_… key, sent as the HTTP Basic user
--                    (`Authorization: Basic base64("sk_…:")`); never logged
--   connect_base     default M.DEFAULT_CONNECT_BASE; absolute http(s), may
--                    carry a path prefix, no query or fragment (else raises)
--   timeout          seconds for one attempt in all (default 30);
--   connect_timeout  seconds to connect (default 10)
--   transport        function(request) -> response | nil, message, code, where
--                    request = { method, url, headers, body, timeout,
--                    connect_timeout, fresh_connect } (core.http_request's
--                    options; fresh_connect is true for the code exchange) and
--                    response = { status, headers, body }; default
--                    core.http_request (non-blocking under `serve`)
--   attempts         tries in all, default 3 (see the retry policy)
--   backoff          seconds before the first retry (default 0.5), doubled
--                    for each further retry and capped at max_backoff (8)
--   sleep            function(seconds) used between tries (default core.sleep)
--
-- Success answers the decoded JSON object (JSON nulls left out).  Failure
-- answers nil, err where err is an M.Error value (tostring gives a message):
--   err.type "oauth"      Stripe's {"error": "<code>", "error_description": …}:
--                         err.error, err.description (nil unless a string),
--                         err.status
--   err.type "transport"  no HTTP answer: err.code (timeout, connect, resolve,
--                         tls, reset, too_large, failed), err.message
--   err.type "api"        any other answer (not JSON, an API-style error
--                         object, a success without the expected field):
--                         err.status, err.message
-- err.attempts counts the tries made.  The secret key, the code and the
-- refresh token are replaced by "[redacted]" wherever Stripe's text echoes
-- them (e.g. "Authorization code does not exist: [redacted]").
--
-- Retry policy.  refresh and deauthorize retry a `connect` or `resolve`
-- failure, a 429 and any 5xx, with exponential backoff.  token retries only a
-- `connect` or `resolve` failure — the request provably never left — and
-- nothing else: once the code may have reached Stripe, a second try would
-- spend it twice, and Stripe revokes the connection on reuse (§2).
-- Timeouts and resets are never retried.

local OAuthError = {}
OAuthError.__index = OAuthError
OAuthError.__tostring = function(e)
  if e.type == "oauth" then
    return string.format("stripe oauth error %s (HTTP %s): %s", e.error, tostring(e.status), e.message)
  elseif e.type == "transport" then
    return string.format("stripe oauth transport failure (%s): %s", e.code, e.message)
  end
  return string.format("stripe oauth unexpected answer (HTTP %s): %s", tostring(e.status), e.message)
end
M.Error = OAuthError

-- is_error(v) -> true when v is an error value answered by token, refresh or
-- deauthorize.
function M.is_error(v)
  return getmetatable(v) == OAuthError
end

local CALL_OPTIONS = {
  secret_key = "string", connect_base = "string", timeout = "number",
  connect_timeout = "number", transport = "function", attempts = "number",
  backoff = "number", max_backoff = "number", sleep = "function",
}

-- Raises on misuse: unknown keys, wrong types, missing required strings.
local POSITIVE = { timeout = true, connect_timeout = true }
local NON_NEGATIVE = { backoff = true, max_backoff = true }

local function check_call_options(name, opts, extra, required)
  if type(opts) ~= "table" then error(name .. ": options table expected", 3) end
  for k, v in pairs(opts) do
    local want = CALL_OPTIONS[k] or extra[k]
    if not want then error(name .. ": unknown option '" .. tostring(k) .. "'", 3) end
    if type(v) ~= want then error(name .. ": option '" .. k .. "' must be a " .. want, 3) end
  end
  for _, k in ipairs(required) do
    if opts[k] == nil or opts[k] == "" then error(name .. ": option '" .. k .. "' is required", 3) end
  end
  if opts.secret_key:find(":", 1, true) then error(name .. ": secret_key must not contain ':'", 3) end
  if opts.attempts and not (opts.attempts >= 1 and opts.attempts == math.floor(opts.attempts)) then
    error(name .. ": attempts must be a positive integer", 3)
  end
  if opts.connect_base ~= nil then
    local problem = http_url_problem(opts.connect_base, "connect_base")
    if not problem and opts.connect_base:find("[?#]") then
      problem = "connect_base must not have a query or fragment"
    end
    if problem then error(name .. ": " .. problem, 3) end
  end
  for k, v in pairs(opts) do
    -- `not (x > 0)` also catches NaN; math.huge is no timeout at all
    if (POSITIVE[k] and not (v > 0 and v < math.huge)) or (NON_NEGATIVE[k] and not (v >= 0 and v < math.huge)) then
      error(name .. ": option '" .. k .. "' must be a " .. (POSITIVE[k] and "positive" or "non-negative") ..
        " finite number of seconds", 3)
    end
  end
end

-- form_body({ { name, value }, … }) -> the request's form body.
local form_body = util.encode_fields

-- redact(s, secrets): the secrets this call sent (key, code, refresh
-- token) masked in Stripe's text whatever their length, and the redactor's
-- prefixes too.
local function redact(s, secrets) return util.redact(s, secrets, 1) end

local function new_error(fields)
  return setmetatable(fields, OAuthError)
end

local function without_nulls(t)
  local out = {}
  for k, v in pairs(t) do
    if v ~= cjson.null then out[k] = v end
  end
  return out
end

-- Turns one HTTP answer into the result table, or nil and an error value.
local function interpret(res, expect, secrets)
  local status, body = res.status, res.body or ""
  local data = cjson.decode(body)
  if type(data) == "table" then
    if type(data.error) == "string" then
      -- only a string is a description (the body is the network's: a number
      -- or an object there must not become err.message)
      local description = type(data.error_description) == "string"
        and redact(data.error_description, secrets) or nil
      return nil, new_error{ type = "oauth", status = status, error = data.error,
                             description = description, message = description or data.error }
    end
    if status >= 200 and status < 300 and type(data[expect]) == "string" then
      return without_nulls(data)
    end
    if type(data.error) == "table" and type(data.error.message) == "string" then
      return nil, new_error{ type = "api", status = status, message = redact(data.error.message, secrets) }
    end
  end
  local ctype = res.headers and res.headers["content-type"] or "no content type"
  return nil, new_error{ type = "api", status = status, message = string.format(
    "unexpected answer from the OAuth endpoint (%s, %d bytes, %s)",
    type(data) == "table" and ("JSON without " .. expect) or "not JSON", #body, ctype) }
end

local function pre_send_failure(code)
  return code == "connect" or code == "resolve"
end

-- Sends fields to path with the call's retry policy (retry_answers: whether
-- 429/5xx answers are retried; once: the request must reach Stripe at most
-- once, so it goes on a fresh connection, which the HTTP client never resends
-- on another).  Returns the result or nil, err.
local function oauth_call(opts, path, fields, expect, secrets, retry_answers, once)
  local base = (opts.connect_base or M.DEFAULT_CONNECT_BASE):gsub("/+$", "")
  local transport = opts.transport or core.http_request
  local sleep = opts.sleep or core.sleep
  local attempts = opts.attempts or 3
  local delay, max_delay = opts.backoff or 0.5, opts.max_backoff or 8
  local body = form_body(fields)
  for attempt = 1, attempts do
    local res, message, code = transport{
      method = "POST",
      url = base .. path,
      headers = {
        ["Authorization"] = "Basic " .. core.base64_encode(opts.secret_key .. ":"),
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Accept"] = "application/json",
        ["User-Agent"] = "stripe-connect-lua/" .. tostring(core.version),
      },
      body = body,
      timeout = opts.timeout or 30,
      connect_timeout = opts.connect_timeout or 10,
      fresh_connect = once or nil,
    }
    local result, err, retry
    if res == nil then
      code = code or "failed"
      err = new_error{ type = "transport", code = code, message = redact(tostring(message or code), secrets) }
      retry = pre_send_failure(code)
    else
      result, err = interpret(res, expect, secrets)
      if result then return result end
      retry = retry_answers and (res.status == 429 or res.status >= 500)
    end
    err.attempts = attempt
    if not retry or attempt == attempts then return nil, err end
    sleep(math.min(delay, max_delay))
    delay = delay * 2
  end
end

-- token{ secret_key=, code=, assert_capabilities=? (Express: list), … } —
-- exchanges an authorization code (grant_type authorization_code).  Answers
-- { stripe_user_id, scope, livemode, token_type, access_token?,
-- refresh_token?, stripe_publishable_key? } or nil, err.
function M.token(opts)
  check_call_options("token", opts, { code = "string", assert_capabilities = "table" },
    { "secret_key", "code" })
  local fields = { { "grant_type", "authorization_code" }, { "code", opts.code } }
  local capabilities = opts.assert_capabilities or {}
  local n = 0
  for _ in pairs(capabilities) do n = n + 1 end
  for i = 1, n do
    if type(capabilities[i]) ~= "string" or capabilities[i] == "" then
      error("token: assert_capabilities must be an array of capability names", 2)
    end
    fields[#fields + 1] = { "assert_capabilities[" .. (i - 1) .. "]", capabilities[i] }
  end
  return oauth_call(opts, "/oauth/token", fields, "stripe_user_id",
    { opts.secret_key, opts.code }, false, true)
end

-- refresh{ secret_key=, refresh_token=, scope=? ("read_write" or "read_only",
-- equal to or narrower than the refresh token's), … } —
-- grant_type refresh_token.  Answers the same fields as token.
function M.refresh(opts)
  check_call_options("refresh", opts, { refresh_token = "string", scope = "string" },
    { "secret_key", "refresh_token" })
  if opts.scope ~= nil and opts.scope ~= "read_write" and opts.scope ~= "read_only" then
    error('refresh: option \'scope\' must be "read_write" or "read_only"', 2)
  end
  local fields = { { "grant_type", "refresh_token" }, { "refresh_token", opts.refresh_token } }
  if opts.scope then fields[#fields + 1] = { "scope", opts.scope } end
  return oauth_call(opts, "/oauth/token", fields, "stripe_user_id",
    { opts.secret_key, opts.refresh_token }, true)
end

-- deauthorize{ secret_key=, client_id=, stripe_user_id=, … } — ends the
-- connection.  Answers { stripe_user_id = … } or nil, err (invalid_client
-- when that account is not connected to client_id).
function M.deauthorize(opts)
  check_call_options("deauthorize", opts, { client_id = "string", stripe_user_id = "string" },
    { "secret_key", "client_id", "stripe_user_id" })
  local fields = { { "client_id", opts.client_id }, { "stripe_user_id", opts.stripe_user_id } }
  return oauth_call(opts, "/oauth/deauthorize", fields, "stripe_user_id", { opts.secret_key }, true)
end

return M
