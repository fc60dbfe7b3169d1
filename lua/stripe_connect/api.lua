-- stripe_connect.api — the Stripe API (https://api.stripe.com/v1/…) as the
-- platform or as a connected account (`Stripe-Account`), on the same kind
-- of injectable transport as the OAuth calls (default core.http_request:
-- yields the request's coroutine under `serve`, blocks under `run`).
--
--   local api = require "stripe_connect.api"
--   local client = api.new{ secret_key = "sk_test_…" }         -- or api.configure{…}: the module's own client
--   local c, err = client:post("/v1/customers", { email = "a@b.example" }, { account = "acct_…" })
--   local a, err = client:account("acct_…")                      -- GET /v1/account as that account
--   for customer, err in client:list("/v1/customers", { limit = 10 }, { account = "acct_…" }) do … end
--   client:request{ method=, path=, params=, account=, idempotency_key=, api_version=, timeout= }
--
-- Every call answers the decoded JSON object (JSON nulls left out) or
-- nil, err with err an api.Error (see doc/reference.md "Acting as a connected account").
--
-- Retries follow stripe-node (RequestSender._shouldRetry): up to
-- max_network_retries more tries (default 2) after a connection failure
-- (connect, resolve, timeout, reset), a 409, a 429 or a 5xx, unless Stripe
-- answers `Stripe-Should-Retry: false` (and always when it answers `true`);
-- the delay is min(initial × 2^(n-1), max) scaled by a random factor in
-- [0.5, 1), never below initial (0.5 s and 5 s by default).  Every POST
-- carries an Idempotency-Key (a fresh `stripe-connect-retry-<uuid4>` when the
-- caller gives none) that stays the same across its retries, so Stripe
-- applies a retried POST once.
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local M = {}

M.DEFAULT_API_BASE = "https://api.stripe.com"
M.DEFAULT_MAX_NETWORK_RETRIES = 2
M.INITIAL_RETRY_DELAY = 0.5
M.MAX_RETRY_DELAY = 5

-- ------------------------------------------------------------- errors
local ApiError = {}
ApiError.__index = ApiError
ApiError.__tostring = function(e)
  if e.kind == "connection" then
    return string.format("stripe api connection failure (%s): %s", tostring(e.code), e.message)
  end
  local extra = {}
  if e.code then extra[#extra + 1] = "code " .. e.code end
  if e.param then extra[#extra + 1] = "param " .. e.param end
  if e.request_id then extra[#extra + 1] = e.request_id end
  return string.format("stripe api %s (HTTP %s%s): %s", tostring(e.type), tostring(e.status),
    #extra > 0 and (", " .. table.concat(extra, ", ")) or "", e.message)
end
M.Error = ApiError

function M.is_error(v)
  return getmetatable(v) == ApiError
end

-- The error's kind, as stripe-node's classes name them (StripeCardError …):
-- the status decides for 401, 403 and 429, Stripe's error type otherwise.
local KIND_OF_TYPE = {
  card_error = "card", invalid_request_error = "invalid_request", api_error = "api",
  idempotency_error = "idempotency", authentication_error = "authentication",
  rate_limit_error = "rate_limit",
}
local KIND_OF_STATUS = { [401] = "authentication", [403] = "permission", [429] = "rate_limit" }

M.CLASS = {
  card = "StripeCardError", invalid_request = "StripeInvalidRequestError", api = "StripeAPIError",
  idempotency = "StripeIdempotencyError", authentication = "StripeAuthenticationError",
  permission = "StripePermissionError", rate_limit = "StripeRateLimitError",
  connection = "StripeConnectionError", unknown = "StripeUnknownError",
}

local function redact(s, secrets)
  if type(s) ~= "string" then return nil end
  return util.redact(s, secrets)
end

-- not_connected(err, account) -> true when Stripe's answer says the platform
-- no longer has access to `account` (the user disconnected it).
local function says_not_connected(status, body, account)
  if not account then return false end
  if status == 403 then return true end
  if status ~= 401 then return false end
  local msg = type(body.message) == "string" and body.message or ""
  return body.code == "account_invalid" or msg:find("does not have access to account", 1, true) ~= nil
end

local function answer_error(res, data, account, secrets)
  local status = res.status
  local e = type(data) == "table" and type(data.error) == "table" and data.error or nil
  local headers = res.headers or {}
  local err = { status = status, request_id = headers["request-id"], should_retry = headers["stripe-should-retry"] }
  if e then
    err.type = type(e.type) == "string" and e.type or "api_error"
    for _, f in ipairs{ "code", "param", "decline_code", "doc_url" } do
      if type(e[f]) == "string" then err[f] = e[f] end
    end
    err.message = redact(type(e.message) == "string" and e.message or err.type, secrets)
    err.request_id = type(e.request_id) == "string" and e.request_id or err.request_id
    err.kind = KIND_OF_STATUS[status] or KIND_OF_TYPE[err.type] or "unknown"
    err.not_connected = says_not_connected(status, e, account) or nil
  else
    err.type = "api_error"
    err.kind = KIND_OF_STATUS[status] or (status >= 500 and "api") or "unknown"
    err.message = string.format("unexpected answer from the Stripe API (HTTP %d, %s, %d bytes)", status,
      type(data) == "table" and "JSON without an error object" or "not JSON", #(res.body or ""))
  end
  err.class = M.CLASS[err.kind]
  return setmetatable(err, ApiError)
end

local function connection_error(message, code, secrets)
  return setmetatable({ type = "connection_error", kind = "connection", class = M.CLASS.connection,
    code = code or "failed", message = redact(tostring(message or code or "failed"), secrets) }, ApiError)
end

-- ----------------------------------------------------------- requests
local RETRY_CODES = { connect = true, resolve = true, timeout = true, reset = true }

-- should_retry(res, code, tries_left) as stripe-node's _shouldRetry (+ 429).
local function should_retry(res, code, retries_left)
  if retries_left <= 0 then return false end
  if not res then return RETRY_CODES[code] == true end
  local hint = res.headers and res.headers["stripe-should-retry"]
  if hint == "false" then return false end
  if hint == "true" then return true end
  return res.status == 409 or res.status == 429 or res.status >= 500
end
M.should_retry = should_retry

-- retry_delay(n, opts) -> seconds before retry n (1-based), stripe-node's
-- _getSleepTimeInMS: exponential, capped, jittered into [d/2, d), >= initial.
function M.retry_delay(n, initial, max, random)
  initial, max = initial or M.INITIAL_RETRY_DELAY, max or M.MAX_RETRY_DELAY
  local d = math.min(initial * 2 ^ (n - 1), max)
  d = d * 0.5 * (1 + (random or math.random)())
  return math.max(initial, d)
end

-- A v4 UUID from the CSPRNG.
local function uuid4()
  local b = { core.random_bytes(16):byte(1, 16) }
  b[7] = (b[7] % 16) + 64
  b[9] = (b[9] % 64) + 128
  local hex = string.format(("%02x"):rep(16), (table.unpack or unpack)(b))
  return hex:sub(1, 8) .. "-" .. hex:sub(9, 12) .. "-" .. hex:sub(13, 16) .. "-" .. hex:sub(17, 20) .. "-" .. hex:sub(21)
end
M.new_idempotency_key = function() return "stripe-connect-retry-" .. uuid4() end

local function without_nulls(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if x ~= cjson.null then out[k] = without_nulls(x) end
  end
  return out
end

local CLIENT_OPTIONS = {
  secret_key = "string", api_base = "string", api_version = "string", transport = "function",
  http = "function", sleep = "function", random = "function", timeout = "number",
  connect_timeout = "number", max_network_retries = "number", initial_retry_delay = "number",
  max_retry_delay = "number", on_not_connected = "function", log = "function", secrets = "table",
}

local REQUEST_OPTIONS = {
  method = "string", path = "string", params = "table", account = "string", idempotency_key = "string",
  api_version = "string", timeout = "number", max_network_retries = "number", headers = "table",
}

local function check(opts, allowed, where)
  if type(opts) ~= "table" then error(where .. ": options table expected", 3) end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then error(where .. ": unknown option '" .. tostring(k) .. "'", 3) end
    if type(v) ~= want then error(where .. ": option '" .. k .. "' must be a " .. want, 3) end
  end
end

local Client = {}
Client.__index = Client

-- new(opts) -> client.  opts: secret_key (required before the first call),
-- api_base (default https://api.stripe.com), api_version, transport (or
-- http: function(request) -> response | nil, message, code, as
-- core.http_request), sleep (default core.sleep), random (jitter, default
-- math.random), timeout (30) and connect_timeout (10) per try,
-- max_network_retries (2), initial_retry_delay (0.5), max_retry_delay (5),
-- on_not_connected(account_id, err) (Stripe said the platform no longer has
-- access to that account), secrets (more strings to keep out of errors).
function M.new(opts)
  opts = opts or {}
  check(opts, CLIENT_OPTIONS, "api.new")
  if opts.api_base ~= nil then
    local problem = require("stripe_connect.oauth").http_url_problem(opts.api_base, "api_base")
    if problem or opts.api_base:find("[?#]") then error("api.new: " .. (problem or "api_base must not have a query"), 2) end
  end
  local n = opts.max_network_retries
  if n ~= nil and not (n >= 0 and n == math.floor(n) and n <= 10) then
    error("api.new: max_network_retries must be a whole number from 0 to 10", 2)
  end
  return setmetatable({ opts = opts }, Client)
end

function Client:configure(opts)
  local merged = {}
  for k, v in pairs(self.opts) do merged[k] = v end
  for k, v in pairs(opts or {}) do merged[k] = v end
  self.opts = M.new(merged).opts
  return self
end

local function secret_key(self)
  local key = self.opts.secret_key or os.getenv("STRIPE_SECRET_KEY")
  if type(key) ~= "string" or key == "" then
    error("api: no secret key (pass secret_key to api.new / api.configure, or set STRIPE_SECRET_KEY)", 3)
  end
  return key
end

-- Raises (at request's caller) unless the path and the account look right.
local function check_target(r)
  local path = r.path
  if type(path) ~= "string" or not path:match("^/v%d+/[%w_%-/%.]*$") then
    error("api.request: path must look like /v1/… (letters, digits, _ - . /)", 3)
  end
  if r.account ~= nil and not r.account:match("^acct_[%w_]+$") then
    error("api.request: account must be an acct_… id", 3)
  end
end

-- url_and_body(o, method, r) -> url, body: the params form-encoded into a
-- POST's body, into the query otherwise.
local function url_and_body(o, method, r)
  local base = (o.api_base or os.getenv("STRIPE_API_BASE") or M.DEFAULT_API_BASE):gsub("/+$", "")
  local encoded = r.params and core.form_encode(r.params) or ""
  local url, body = base .. r.path, nil
  if method == "POST" then
    body = encoded
  elseif encoded ~= "" then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. encoded
  end
  return url, body
end

-- The request's headers: the key, the Idempotency-Key (always on a POST),
-- the account and the API version, then the caller's own.
local function request_headers(o, method, r, key)
  local headers = {
    ["Authorization"] = "Bearer " .. key,
    ["Accept"] = "application/json",
    ["User-Agent"] = "stripe-connect-lua/" .. tostring(core.version),
  }
  if method == "POST" then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    headers["Idempotency-Key"] = r.idempotency_key or M.new_idempotency_key()
  elseif r.idempotency_key then
    headers["Idempotency-Key"] = r.idempotency_key
  end
  if r.account then headers["Stripe-Account"] = r.account end
  local version = r.api_version or o.api_version
  if version then headers["Stripe-Version"] = version end
  for k, v in pairs(r.headers or {}) do headers[k] = v end
  return headers
end

-- send(o, r, call, secrets) -> body | nil, err: call (method, url, headers,
-- body) sent on the transport, tried again as should_retry says.
local function send(o, r, call, secrets)
  local transport = o.transport or o.http or core.http_request
  local sleep = o.sleep or core.sleep
  local retries = r.max_network_retries or o.max_network_retries or M.DEFAULT_MAX_NETWORK_RETRIES
  local attempt = 0
  while true do
    attempt = attempt + 1
    local res, message, code = transport{
      method = call.method, url = call.url, headers = call.headers, body = call.body,
      timeout = r.timeout or o.timeout or 30, connect_timeout = o.connect_timeout or 10,
    }
    local err
    if res then
      local data = cjson.decode(res.body or "")
      if res.status >= 200 and res.status < 300 and type(data) == "table" then
        return without_nulls(data)
      end
      err = answer_error(res, data, r.account, secrets)
    else
      err = connection_error(message, code, secrets)
    end
    err.attempts = attempt
    err.idempotency_key = call.headers["Idempotency-Key"]
    if not should_retry(res, code, retries - (attempt - 1)) then
      if err.not_connected and o.on_not_connected then o.on_not_connected(r.account, err) end
      return nil, err
    end
    sleep(M.retry_delay(attempt, o.initial_retry_delay, o.max_retry_delay, o.random))
  end
end

-- request{ method, path, params, account, idempotency_key, api_version,
-- timeout, max_network_retries, headers } -> body | nil, err
function Client:request(r)
  check(r, REQUEST_OPTIONS, "api.request")
  check_target(r)
  local o = self.opts
  local method = (r.method or "GET"):upper()
  local key = secret_key(self)
  local secrets = { key }
  for _, s in ipairs(o.secrets or {}) do secrets[#secrets + 1] = s end
  local url, body = url_and_body(o, method, r)
  return send(o, r, { method = method, url = url, body = body, headers = request_headers(o, method, r, key) }, secrets)
end

local function sugar(method)
  return function(self, path, params, opts)
    local r = {}
    for k, v in pairs(opts or {}) do r[k] = v end
    r.method, r.path, r.params = method, path, params
    return self:request(r)
  end
end
Client.get = sugar("GET")
Client.post = sugar("POST")
Client.delete = sugar("DELETE")

-- account(acct, opts) -> the account object, as that account (GET
-- /v1/account with Stripe-Account); without acct, the platform's own.
function Client:account(acct, opts)
  local r = {}
  for k, v in pairs(opts or {}) do r[k] = v end
  r.method, r.path, r.account = "GET", "/v1/account", acct
  return self:request(r)
end

-- list(path, params, opts) -> an iterator over every object of a list,
-- page after page (`has_more`, `starting_after` = the last id):
--   for obj, err in client:list("/v1/customers", { limit = 100 }) do
--     if not obj then … err … end
--   end
-- A failed page yields false, err once (a generic for stops on nil, so
-- false keeps the error visible), then the loop ends.
function Client:list(path, params, opts)
  local p = {}
  for k, v in pairs(params or {}) do p[k] = v end
  local page, i, done = nil, 0, false
  return function()
    if done then return nil end
    if page and i >= #page.data then
      if not page.has_more or #page.data == 0 then done = true; return nil end
      p.starting_after = page.data[#page.data].id
      page = nil
    end
    if not page then
      local res, err = self:get(path, p, opts)
      if not res then done = true; return false, err end
      if type(res.data) ~= "table" then
        done = true
        return false, setmetatable({ type = "api_error", kind = "api", class = M.CLASS.api, status = 200,
          message = "the answer is not a list (no data array)" }, ApiError)
      end
      page, i = res, 0
      if #res.data == 0 then done = true; return nil end
    end
    i = i + 1
    return page.data[i]
  end
end

-- list_all(path, params, opts) -> array of every object | nil, err
function Client:list_all(path, params, opts)
  local out = {}
  for obj, err in self:list(path, params, opts) do
    if err then return nil, err end
    out[#out + 1] = obj
  end
  return out
end

-- The module is itself a client (configured by api.configure, or from
-- STRIPE_SECRET_KEY / STRIPE_API_BASE at call time).
local default = M.new{}
function M.configure(opts) default:configure(opts); return M end
for _, name in ipairs{ "request", "get", "post", "delete", "account", "list", "list_all" } do
  M[name] = function(...) return Client[name](default, ...) end
end
M.Client = Client

return M
