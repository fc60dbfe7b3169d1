-- stripe_connect.oauth token / refresh / deauthorize against a recording
-- transport: the request shape (doc/PROTOCOL.md §4 SDK vectors), error typing,
-- secret redaction and the retry policy.  No network, no sleeping.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local oauth = require "stripe_connect.oauth"

local SK = "sk_test_123"
local BASIC = "Basic " .. "c2tfdGVzdF8xMjM6" -- base64("sk_test_123:")
local FIXTURE = '{"access_token":"sk_access_token","scope":"read_only","livemode":false,' ..
  '"token_type":"bearer","refresh_token":"sk_refresh_token","stripe_user_id":"acct_test",' ..
  '"stripe_publishable_key":"pk_test"}'

-- A transport answering `answers` in order; each answer is a response table
-- or { nil, message, code }.  Records every request; sleeps are recorded.
local function recorder(answers)
  local r = { requests = {}, sleeps = {} }
  function r.transport(request)
    r.requests[#r.requests + 1] = request
    local a = answers[#r.requests] or answers[#answers]
    if a.status then return a end
    return nil, a[2], a[3]
  end
  function r.sleep(s) r.sleeps[#r.sleeps + 1] = s end
  return r
end

local function json(status, body) return { status = status, headers = { ["content-type"] = "application/json" }, body = body } end
local OK_DEAUTH = json(200, '{"stripe_user_id":"acct_test_deauth"}')

local function with(r, t)
  t.transport, t.sleep = r.transport, r.sleep
  return t
end

local TestOAuthCalls = {}

function TestOAuthCalls.test_token_request_matches_sdk_vector()
  local r = recorder{ json(200, FIXTURE) }
  local res, err = oauth.token(with(r, { secret_key = SK, code = "this_is_an_authorization_code" }))
  lu.assertNil(err)
  lu.assertEquals(#r.requests, 1)
  local q = r.requests[1]
  lu.assertEquals(q.method, "POST")
  lu.assertEquals(q.url, "https://connect.stripe.com/oauth/token")
  lu.assertEquals(q.headers.Authorization, BASIC)
  lu.assertEquals(q.headers["Content-Type"], "application/x-www-form-urlencoded")
  lu.assertEquals(q.body, "grant_type=authorization_code&code=this_is_an_authorization_code")
  lu.assertEquals(res, { access_token = "sk_access_token", scope = "read_only", livemode = false,
    token_type = "bearer", refresh_token = "sk_refresh_token", stripe_user_id = "acct_test",
    stripe_publishable_key = "pk_test" })
end

function TestOAuthCalls.test_request_uses_only_http_request_options()
  local allowed = { method = true, url = true, headers = true, body = true, timeout = true,
                    connect_timeout = true, fresh_connect = true }
  local r = recorder{ json(200, FIXTURE) }
  oauth.token(with(r, { secret_key = SK, code = "ac_1", timeout = 5, connect_timeout = 2 }))
  for k in pairs(r.requests[1]) do lu.assertTrue(allowed[k], k) end
  lu.assertEquals(r.requests[1].timeout, 5)
  lu.assertEquals(r.requests[1].connect_timeout, 2)
end

-- The code exchange goes on a fresh connection (the HTTP client never resends
-- it after a kept-alive connection dies); refresh and deauthorize, which may
-- be retried anyway, reuse connections.
function TestOAuthCalls.test_only_the_code_exchange_asks_for_a_fresh_connection()
  local r = recorder{ json(200, FIXTURE), json(200, FIXTURE), json(200, { stripe_user_id = "acct_1" }) }
  oauth.token(with(r, { secret_key = SK, code = "ac_1" }))
  oauth.refresh(with(r, { secret_key = SK, refresh_token = "rt_1" }))
  oauth.deauthorize(with(r, { secret_key = SK, client_id = "ca_1", stripe_user_id = "acct_1" }))
  lu.assertIs(r.requests[1].fresh_connect, true)
  lu.assertNil(r.requests[2].fresh_connect)
  lu.assertNil(r.requests[3].fresh_connect)
end

function TestOAuthCalls.test_bodies()
  local rows = {
    { "deauthorize vector", oauth.deauthorize,
      { client_id = "ca_123", stripe_user_id = "acct_test_deauth" },
      "/oauth/deauthorize", "client_id=ca_123&stripe_user_id=acct_test_deauth" },
    { "refresh", oauth.refresh, { refresh_token = "rt_1" },
      "/oauth/token", "grant_type=refresh_token&refresh_token=rt_1" },
    { "refresh narrower scope", oauth.refresh, { refresh_token = "rt_1", scope = "read_only" },
      "/oauth/token", "grant_type=refresh_token&refresh_token=rt_1&scope=read_only" },
    { "express assert_capabilities", oauth.token,
      { code = "code", assert_capabilities = { "card_payments", "transfers" } }, "/oauth/token",
      "grant_type=authorization_code&code=code&assert_capabilities[0]=card_payments" ..
      "&assert_capabilities[1]=transfers" },
    { "values percent-encoded", oauth.token, { code = "a b&c=d/é" }, "/oauth/token",
      "grant_type=authorization_code&code=a%20b%26c%3Dd%2F%C3%A9" },
  }
  for _, row in ipairs(rows) do
    local r = recorder{ json(200, '{"stripe_user_id":"acct_1"}') }
    local opts = with(r, row[3])
    opts.secret_key = SK
    local res = row[2](opts)
    lu.assertEquals(res, { stripe_user_id = "acct_1" }, row[1])
    lu.assertEquals(r.requests[1].url, "https://connect.stripe.com" .. row[4], row[1])
    lu.assertEquals(r.requests[1].body, row[5], row[1])
    lu.assertEquals(r.requests[1].headers.Authorization, BASIC, row[1])
  end
end

function TestOAuthCalls.test_deauthorize_answer()
  local r = recorder{ OK_DEAUTH }
  local res = oauth.deauthorize(with(r, { secret_key = SK, client_id = "ca_123",
                                          stripe_user_id = "acct_test_deauth" }))
  lu.assertEquals(res, { stripe_user_id = "acct_test_deauth" })
end

function TestOAuthCalls.test_connect_base()
  local rows = {
    { "https://connect.example.com", "https://connect.example.com/oauth/token" },
    { "http://127.0.0.1:12111/", "http://127.0.0.1:12111/oauth/token" },
  }
  for _, row in ipairs(rows) do
    local r = recorder{ json(200, FIXTURE) }
    oauth.token(with(r, { secret_key = SK, code = "c", connect_base = row[1] }))
    lu.assertEquals(r.requests[1].url, row[2])
  end
end

function TestOAuthCalls.test_basic_header_is_standard_base64()
  local r = recorder{ json(200, FIXTURE) }
  local key = "sk_test_" .. ("\255"):rep(3) -- '/' and '+' only in standard base64
  oauth.token(with(r, { secret_key = key, code = "c" }))
  lu.assertEquals(r.requests[1].headers.Authorization, "Basic " .. core.base64_encode(key .. ":"))
  lu.assertStrContains(r.requests[1].headers.Authorization, "/")
end

function TestOAuthCalls.test_error_typing()
  local rows = {
    { "invalid_grant", json(400, '{"error":"invalid_grant","error_description":"This authorization code has already been used. All tokens issued with this code have been revoked."}'),
      { type = "oauth", status = 400, error = "invalid_grant",
        description = "This authorization code has already been used. All tokens issued with this code have been revoked." } },
    { "invalid_client 401", json(401, '{"error":"invalid_client","error_description":"No authentication was provided."}'),
      { type = "oauth", status = 401, error = "invalid_client", description = "No authentication was provided." } },
    { "no description", json(400, '{"error":"invalid_request"}'),
      { type = "oauth", status = 400, error = "invalid_request", message = "invalid_request" } },
    { "null description", json(400, '{"error":"invalid_scope","error_description":null}'),
      { type = "oauth", status = 400, error = "invalid_scope", message = "invalid_scope" } },
    { "transport timeout", { nil, "Operation timed out after 30000 ms", "timeout" },
      { type = "transport", code = "timeout", message = "Operation timed out after 30000 ms" } },
    { "transport without code", { nil, "boom" }, { type = "transport", code = "failed" } },
    { "html 502", { status = 502, headers = { ["content-type"] = "text/html" }, body = "<h1>Bad gateway</h1>" },
      { type = "api", status = 502 } },
    { "200 without stripe_user_id", json(200, '{"token_type":"bearer"}'), { type = "api", status = 200 } },
    { "200 JSON array", json(200, '[1]'), { type = "api", status = 200 } },
    { "api-style error", json(404, '{"error":{"type":"invalid_request_error","message":"Unrecognized request URL (POST: /oauth/token)."}}'),
      { type = "api", status = 404, message = "Unrecognized request URL (POST: /oauth/token)." } },
  }
  for _, row in ipairs(rows) do
    local r = recorder{ row[2] }
    local res, err = oauth.token(with(r, { secret_key = SK, code = "ac_1" }))
    lu.assertNil(res, row[1])
    lu.assertTrue(oauth.is_error(err), row[1])
    for k, v in pairs(row[3]) do lu.assertEquals(err[k], v, row[1] .. ": " .. k) end
    lu.assertEquals(err.attempts, 1, row[1])
    local text = tostring(err)
    lu.assertStrContains(text, "stripe oauth", false, row[1])
    if row[3].error then lu.assertStrContains(text, row[3].error, false, row[1]) end
    if row[3].status then lu.assertStrContains(text, tostring(row[3].status), false, row[1]) end
  end
end

-- A description that is not a string (a number, an object: the body is the
-- network's) used to become err.description and err.message as-is, so
-- tostring(err) printed "table: 0x…" and err.message was not a string.
function TestOAuthCalls.test_non_string_description_is_ignored()
  for _, d in ipairs{ '{"x":1}', "5", "[\"a\"]", "true" } do
    local r = recorder{ json(400, '{"error":"invalid_grant","error_description":' .. d .. '}') }
    local res, err = oauth.token(with(r, { secret_key = SK, code = "ac_1" }))
    lu.assertNil(res, d)
    lu.assertEquals(err.type, "oauth", d)
    lu.assertEquals(err.error, "invalid_grant", d)
    lu.assertNil(err.description, d)
    lu.assertEquals(err.message, "invalid_grant", d)
    lu.assertEquals(tostring(err), "stripe oauth error invalid_grant (HTTP 400): invalid_grant", d)
  end
end

function TestOAuthCalls.test_secrets_redacted_from_errors()
  local code, rt = "ac_SECRETCODE1234", "rt_SECRETREFRESH"
  local rows = {
    { oauth.token, { code = code },
      json(400, '{"error":"invalid_grant","error_description":"Authorization code does not exist: ' .. code .. '"}'),
      "Authorization code does not exist: [redacted]" },
    { oauth.refresh, { refresh_token = rt },
      json(400, '{"error":"invalid_grant","error_description":"Invalid refresh token: ' .. rt .. ' (' .. rt .. ')"}'),
      "Invalid refresh token: [redacted] ([redacted])" },
    { oauth.token, { code = code },
      json(401, '{"error":{"message":"Invalid API Key provided: ' .. SK .. '"}}'),
      "Invalid API Key provided: [redacted]" },
    -- The code this call sent is masked whatever its length.
    { oauth.token, { code = "ac_x1" },
      json(400, '{"error":"invalid_grant","error_description":"Authorization code does not exist: ac_x1"}'),
      "Authorization code does not exist: [redacted]" },
  }
  for _, row in ipairs(rows) do
    local r = recorder{ row[3] }
    local opts = with(r, row[2])
    opts.secret_key = SK
    local _, err = row[1](opts)
    lu.assertEquals(err.message, row[4])
    for _, secret in ipairs{ SK, code, rt } do
      lu.assertNil(tostring(err):find(secret, 1, true), secret)
    end
  end
  local r = recorder{ { nil, "could not send " .. code, "failed" } }
  local _, err = oauth.token(with(r, { secret_key = SK, code = code }))
  lu.assertNil(tostring(err):find(code, 1, true))
end

-- Rows: name, call, answers, expected number of requests, expected sleeps,
-- success?  Defaults: attempts 3, backoff 0.5 doubling, cap 8.
local CONNECT_FAIL = { nil, "Failed to connect", "connect" }
local RESOLVE_FAIL = { nil, "Could not resolve host", "resolve" }
local TIMEOUT = { nil, "timed out", "timeout" }
local RESET = { nil, "connection reset", "reset" }
local S500, S503 = json(500, '{"error":{"message":"oops"}}'), json(503, "")
local S429 = json(429, '{"error":{"message":"Too many requests"}}')
local S400 = json(400, '{"error":"invalid_grant","error_description":"nope"}')

function TestOAuthCalls.test_retry_policy()
  local refresh = { oauth.refresh, { refresh_token = "rt_1" } }
  local deauth = { oauth.deauthorize, { client_id = "ca_1", stripe_user_id = "acct_1" } }
  local token = { oauth.token, { code = "ac_1" } }
  local ok = json(200, '{"stripe_user_id":"acct_1"}')
  local rows = {
    { "refresh 500, 429, ok", refresh, { S500, S429, ok }, 3, { 0.5, 1 }, true },
    { "refresh connect failure then ok", refresh, { CONNECT_FAIL, ok }, 2, { 0.5 }, true },
    { "refresh gives up after attempts", refresh, { S503 }, 3, { 0.5, 1 }, false },
    { "refresh 400 not retried", refresh, { S400, ok }, 1, {}, false },
    { "refresh timeout not retried", refresh, { TIMEOUT, ok }, 1, {}, false },
    { "deauthorize resolve failure then ok", deauth, { RESOLVE_FAIL, ok }, 2, { 0.5 }, true },
    { "deauthorize 502 then ok", deauth, { json(502, "bad"), ok }, 2, { 0.5 }, true },
    { "deauthorize reset not retried", deauth, { RESET, ok }, 1, {}, false },
    { "token 500 never retried", token, { S500, ok }, 1, {}, false },
    { "token 429 never retried", token, { S429, ok }, 1, {}, false },
    { "token timeout never retried", token, { TIMEOUT, ok }, 1, {}, false },
    { "token reset never retried", token, { RESET, ok }, 1, {}, false },
    { "token connect failure retried", token, { CONNECT_FAIL, ok }, 2, { 0.5 }, true },
    { "token resolve failure retried", token, { RESOLVE_FAIL, RESOLVE_FAIL, ok }, 3, { 0.5, 1 }, true },
  }
  for _, row in ipairs(rows) do
    local r = recorder(row[3])
    local opts = with(r, {})
    for k, v in pairs(row[2][2]) do opts[k] = v end
    opts.secret_key = SK
    local res, err = row[2][1](opts)
    lu.assertEquals(#r.requests, row[4], row[1])
    lu.assertEquals(r.sleeps, row[5], row[1])
    lu.assertEquals(res ~= nil, row[6], row[1])
    if not row[6] then lu.assertEquals(err.attempts, row[4], row[1]) end
  end
end

function TestOAuthCalls.test_backoff_is_capped_and_configurable()
  local r = recorder{ S503 }
  local _, err = oauth.refresh(with(r, { secret_key = SK, refresh_token = "rt_1", attempts = 6,
                                         backoff = 1, max_backoff = 3 }))
  lu.assertEquals(#r.requests, 6)
  lu.assertEquals(r.sleeps, { 1, 2, 3, 3, 3 })
  lu.assertEquals(err.status, 503)
  lu.assertEquals(err.attempts, 6)
  r = recorder{ S503 }
  oauth.deauthorize(with(r, { secret_key = SK, client_id = "ca_1", stripe_user_id = "acct_1", attempts = 1 }))
  lu.assertEquals(#r.requests, 1)
  lu.assertEquals(r.sleeps, {})
end

function TestOAuthCalls.test_misuse_raises()
  local t = function() return json(200, FIXTURE) end
  local rows = {
    { "unknown option", oauth.token, { secret_key = SK, code = "c", transport = t, grant_type = "x" }, "unknown option 'grant_type'" },
    { "missing code", oauth.token, { secret_key = SK, transport = t }, "option 'code' is required" },
    { "empty code", oauth.token, { secret_key = SK, code = "", transport = t }, "option 'code' is required" },
    { "missing key", oauth.token, { code = "c", transport = t }, "option 'secret_key' is required" },
    { "wrong type", oauth.token, { secret_key = SK, code = 12, transport = t }, "option 'code' must be a string" },
    { "colon in key", oauth.token, { secret_key = "sk:x", code = "c", transport = t }, "must not contain ':'" },
    { "bad attempts", oauth.refresh, { secret_key = SK, refresh_token = "r", attempts = 0, transport = t }, "attempts" },
    { "refresh needs token", oauth.refresh, { secret_key = SK, transport = t }, "option 'refresh_token' is required" },
    { "deauthorize needs client_id", oauth.deauthorize, { secret_key = SK, stripe_user_id = "acct_1", transport = t }, "option 'client_id' is required" },
    { "not a table", oauth.deauthorize, nil, "options table expected" },
    { "zero timeout", oauth.token, { secret_key = SK, code = "c", timeout = 0, transport = t }, "option 'timeout' must be a positive" },
    { "nan connect_timeout", oauth.refresh, { secret_key = SK, refresh_token = "r", connect_timeout = 0 / 0, transport = t }, "option 'connect_timeout' must be a positive" },
    { "infinite timeout", oauth.token, { secret_key = SK, code = "c", timeout = math.huge, transport = t }, "finite" },
    { "negative backoff", oauth.refresh, { secret_key = SK, refresh_token = "r", backoff = -1, transport = t }, "option 'backoff' must be a non-negative" },
    { "nan max_backoff", oauth.deauthorize, { secret_key = SK, client_id = "ca_1", stripe_user_id = "acct_1", max_backoff = 0 / 0, transport = t }, "option 'max_backoff'" },
    { "nan attempts", oauth.refresh, { secret_key = SK, refresh_token = "r", attempts = 0 / 0, transport = t }, "attempts must be a positive integer" },
    { "capability not a string", oauth.token, { secret_key = SK, code = "c", assert_capabilities = { "card_payments", 7 }, transport = t }, "assert_capabilities must be an array" },
    { "connect_base not a URL", oauth.token, { secret_key = SK, code = "c", connect_base = "connect.stripe.com", transport = t }, "connect_base must be an absolute http or https URL" },
    { "connect_base ftp", oauth.refresh, { secret_key = SK, refresh_token = "r", connect_base = "ftp://127.0.0.1", transport = t }, "connect_base must be an absolute http or https URL" },
    { "connect_base with query", oauth.deauthorize, { secret_key = SK, client_id = "ca_1", stripe_user_id = "acct_1", connect_base = "http://127.0.0.1:1/?x=1", transport = t }, "connect_base must not have a query" },
    { "connect_base with space", oauth.token, { secret_key = SK, code = "c", connect_base = "http://a b", transport = t }, "connect_base must not contain spaces" },
    { "refresh scope unknown", oauth.refresh, { secret_key = SK, refresh_token = "r", scope = "admin", transport = t }, "option 'scope' must be \"read_write\" or \"read_only\"" },
    { "capabilities not an array", oauth.token, { secret_key = SK, code = "c", assert_capabilities = { x = "card_payments" }, transport = t }, "assert_capabilities must be an array" },
  }
  for _, row in ipairs(rows) do
    lu.assertErrorMsgContains(row[4], row[2], row[3])
    -- raised at the caller's line, not inside oauth.lua
    local ok, err = pcall(row[2], row[3])
    lu.assertFalse(ok, row[1])
    lu.assertNil(err:find("oauth.lua", 1, true), row[1] .. ": " .. err)
  end
end

return { TestOAuthCalls = TestOAuthCalls }
