-- stripe_connect.oauth — Stripe Connect OAuth (Standard accounts):
-- the authorize URL builder, and the token / refresh / deauthorize calls with
-- typed errors.  Facts: PROTOCOL.md §1–4.
local core = require "stripe_connect.core"

local M = {}

M.DEFAULT_CONNECT_BASE = "https://connect.stripe.com"

-- ===================================================== authorize URL (§1)
-- (foundation issue)

-- ============================================ token / refresh / deauthorize
-- POST {connect_base}/oauth/token and /oauth/deauthorize (PROTOCOL.md §2–3).
--
-- Every call takes one options table:
--   secret_key       the platform's sk_… key, sent as the HTTP Basic user
--                    (`Authorization: Basic base64("sk_…:")`); never logged
--   connect_base     default M.DEFAULT_CONNECT_BASE
--   timeout          seconds for one attempt in all (default 30);
--   connect_timeout  seconds to connect (default 10)
--   transport        function(request) -> response | nil, message, code, where
--                    request = { method, url, headers, body, timeout,
--                    connect_timeout } (core.http_request's options) and
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
--                         err.error, err.description, err.status
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
local cjson = require "cjson.safe"

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
local function check_call_options(name, opts, extra, required)
  assert(type(opts) == "table", name .. ": options table expected")
  for k, v in pairs(opts) do
    local want = CALL_OPTIONS[k] or extra[k]
    if not want then error(name .. ": unknown option '" .. tostring(k) .. "'", 3) end
    if type(v) ~= want then error(name .. ": option '" .. k .. "' must be a " .. want, 3) end
  end
  for _, k in ipairs(required) do
    if opts[k] == nil or opts[k] == "" then error(name .. ": option '" .. k .. "' is required", 3) end
  end
  if opts.secret_key:find(":", 1, true) then error(name .. ": secret_key must not contain ':'", 3) end
  if opts.attempts and (opts.attempts < 1 or opts.attempts ~= math.floor(opts.attempts)) then
    error(name .. ": attempts must be a positive integer", 3)
  end
end

local function form_body(fields)
  local parts = {}
  for i, f in ipairs(fields) do parts[i] = f[1] .. "=" .. core.url_encode(f[2]) end
  return table.concat(parts, "&")
end

-- Replaces each secret (plain text, not a pattern) in s by "[redacted]".
local function redact(s, secrets)
  if type(s) ~= "string" then return s end
  for _, secret in ipairs(secrets) do
    local i, j = s:find(secret, 1, true)
    while i do
      s = s:sub(1, i - 1) .. "[redacted]" .. s:sub(j + 1)
      i, j = s:find(secret, i + 10, true)
    end
  end
  return s
end

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
      local description = redact(data.error_description ~= cjson.null and data.error_description or nil, secrets)
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
-- 429/5xx answers are retried).  Returns the result or nil, err.
local function oauth_call(opts, path, fields, expect, secrets, retry_answers)
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
  for i, capability in ipairs(opts.assert_capabilities or {}) do
    fields[#fields + 1] = { "assert_capabilities[" .. (i - 1) .. "]", capability }
  end
  return oauth_call(opts, "/oauth/token", fields, "stripe_user_id",
    { opts.secret_key, opts.code }, false)
end

-- refresh{ secret_key=, refresh_token=, scope=? (equal or narrower), … } —
-- grant_type refresh_token.  Answers the same fields as token.
function M.refresh(opts)
  check_call_options("refresh", opts, { refresh_token = "string", scope = "string" },
    { "secret_key", "refresh_token" })
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
