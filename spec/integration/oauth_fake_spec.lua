-- Our OAuth client (stripe_connect.oauth) against the fake Connect
-- (scripts/fake_connect.lua under `stripe-connect serve --workers 1`) over
-- loopback: every row of issue 4's "Done when" — success, reuse and the
-- revocation it causes, expiry via the fake clock, wrong key, wrong mode,
-- missing parameters, refresh (narrower ok, wider rejected), deauthorize,
-- not connected, transport failures (fake stopped, 500s, slow past the
-- timeout) — plus the seed page's curl lines run verbatim with the `curl` CLI
-- and the signed deauthorized event delivered to a receiver.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local oauth = require "stripe_connect.oauth"
local server = require "support.server"
local http = require "support.http"

-- The seed page's client_id and account, so its curl lines run unchanged.
local CLIENT = "ca_FkyHCg7X8mlvCUdMDao4mMxagUfhIwXb"
local SEED_ACCOUNT = "acct_ON3nXtRQkhmUIQ"
local SK = "sk_test_oauth_fake_spec"
local SK_LIVE = "sk_live_oauth_fake_spec"
local REDIRECT = "http://127.0.0.1:9/oauth/callback"
local WHSEC = { "whsec_spec_current", "whsec_spec_previous" }
local REUSED = "This authorization code has already been used. All tokens issued with this code have been revoked."

local fake, sink -- servers, started once for the class

local function decode(res) return assert(cjson.decode(res.body), res.body) end

local function sleeps_into(list) return function(s) list[#list + 1] = s end end

-- call(fn, opts) -> fn(opts) with the fake as connect base and a recorded
-- (never slept) backoff.
local function call(fn, opts, sleeps)
  opts.connect_base = opts.connect_base or fake.url
  opts.secret_key = opts.secret_key or SK
  opts.sleep = sleeps_into(sleeps or {})
  return fn(opts)
end

-- connect(extra) -> a fresh authorization code, from the fake's consent form.
local function new_code(extra)
  local form = { response_type = "code", client_id = CLIENT, scope = "read_write", decision = "approve" }
  for k, v in pairs(extra or {}) do form[k] = v end
  local res = http.post_form(fake.url .. "/oauth/authorize/decide", form)
  lu.assertEquals(res.status, 302, res.body)
  local q = assert(core.parse_query(res.headers["location"]:match("%?(.*)$")))
  return q.code, q
end

local function connect(extra)
  local t, err = call(oauth.token, { code = new_code(extra) })
  lu.assertNil(err)
  return t
end

local function fake_post(path, form)
  return decode(http.post_form(fake.url .. path, form or {}))
end

local function requests_log()
  return decode(http.get(fake.url .. "/__fake/requests")).data
end

local function assert_oauth_error(err, code, status, name)
  lu.assertTrue(oauth.is_error(err), name)
  lu.assertEquals(err.type, "oauth", name)
  lu.assertEquals(err.error, code, name)
  lu.assertEquals(err.status, status, name)
end

local TestOAuthFake = {}

function TestOAuthFake.setupClass()
  sink = server.start{ app = "spec/support/apps/webhook_sink.lua", args = { "--workers", "1" },
                       env = { SINK_SECRETS = WHSEC[2] } }
  fake = server.start{ app = "scripts/fake_connect.lua", args = { "--workers", "1" }, env = {
    FAKE_CLIENT_ID = CLIENT, FAKE_SECRET_KEY = SK, FAKE_REDIRECT_URIS = REDIRECT,
    FAKE_WEBHOOK_URL = sink.url .. "/webhooks", FAKE_WEBHOOK_SECRETS = table.concat(WHSEC, ","),
  } }
end

function TestOAuthFake.teardownClass()
  if fake then fake:stop() end
  if sink then sink:stop() end
end

function TestOAuthFake.setUp()
  http.request{ method = "DELETE", url = fake.url .. "/__fake/faults" }
end

function TestOAuthFake.test_authorize_url_leads_to_the_consent_page()
  local url = oauth.authorize_url{ client_id = CLIENT, connect_base = fake.url, state = "st_1",
                                   redirect_uri = REDIRECT, stripe_user = { email = "a@example.com" } }
  local res = http.get(url)
  lu.assertEquals(res.status, 200)
  lu.assertStrContains(res.headers["content-type"], "text/html")
  lu.assertStrContains(res.body, "a@example.com")
  lu.assertStrContains(res.body, 'value="approve"')
end

function TestOAuthFake.test_token_success()
  local t, err = call(oauth.token, { code = new_code() })
  lu.assertNil(err)
  lu.assertStrMatches(t.stripe_user_id, "acct_%w+")
  lu.assertEquals(t.scope, "read_write")
  lu.assertEquals(t.livemode, false)
  lu.assertEquals(t.token_type, "bearer")
  lu.assertStrMatches(t.refresh_token, "rt_%w+")
  lu.assertStrMatches(t.access_token, "sk_test_%w+")
  lu.assertStrMatches(t.stripe_publishable_key, "pk_test_%w+")
end

function TestOAuthFake.test_reused_code_fails_and_revokes_the_connection()
  local code = new_code()
  local t = assert(call(oauth.token, { code = code }))
  local res, err = call(oauth.token, { code = code })
  lu.assertNil(res)
  assert_oauth_error(err, "invalid_grant", 400)
  lu.assertEquals(err.description, REUSED)
  lu.assertEquals(err.attempts, 1)
  -- revoked: the refresh token is dead and deauthorize finds no connection
  res, err = call(oauth.refresh, { refresh_token = t.refresh_token })
  assert_oauth_error(err, "invalid_grant", 400)
  res, err = call(oauth.deauthorize, { client_id = CLIENT, stripe_user_id = t.stripe_user_id })
  assert_oauth_error(err, "invalid_client", 401)
  local accounts = decode(http.get(fake.url .. "/__fake/accounts")).data
  for _, a in ipairs(accounts) do
    if a.id == t.stripe_user_id then lu.assertFalse(a.connected) end
  end
end

function TestOAuthFake.test_code_expires_after_five_minutes()
  local code = new_code()
  local clock = fake_post("/__fake/clock", { advance = "301" })
  lu.assertTrue(clock.offset >= 301)
  local res, err = call(oauth.token, { code = code })
  lu.assertNil(res)
  assert_oauth_error(err, "invalid_grant", 400)
  -- codes minted after the jump live their full 5 minutes again
  lu.assertNotNil(call(oauth.token, { code = new_code() }))
end

function TestOAuthFake.test_unknown_code_is_redacted_in_our_error()
  local res, err = call(oauth.token, { code = "ac_doesnotexist42" })
  lu.assertNil(res)
  assert_oauth_error(err, "invalid_grant", 400)
  lu.assertEquals(err.description, "Authorization code does not exist: [redacted]")
  lu.assertNil(tostring(err):find("ac_doesnotexist42", 1, true))
end

function TestOAuthFake.test_wrong_key_and_wrong_mode()
  local code = new_code()
  local rows = {
    { "wrong key", "sk_test_not_the_platform", "invalid_client", 401 },
    { "live key for a test code", SK_LIVE, "invalid_grant", 400 },
  }
  for _, row in ipairs(rows) do
    local res, err = call(oauth.token, { code = code, secret_key = row[2] })
    lu.assertNil(res, row[1])
    assert_oauth_error(err, row[3], row[4], row[1])
    lu.assertNil(tostring(err):find(row[2], 1, true), row[1])
  end
  -- neither attempt spent the code
  lu.assertNotNil(call(oauth.token, { code = code }))
  local _, err = call(oauth.deauthorize, { client_id = CLIENT, stripe_user_id = "acct_x", secret_key = SK_LIVE })
  assert_oauth_error(err, "invalid_client", 401, "deauthorize with the live key")
end

function TestOAuthFake.test_missing_parameters()
  local auth = { Authorization = "Basic " .. core.base64_encode(SK .. ":") }
  local rows = {
    { "/oauth/token", {}, "invalid_request", "No grant type specified" },
    { "/oauth/token", { grant_type = "authorization_code" }, "invalid_request" },
    { "/oauth/token", { grant_type = "refresh_token" }, "invalid_request" },
    { "/oauth/token", { grant_type = "client_credentials" }, "unsupported_grant_type" },
    { "/oauth/deauthorize", { client_id = CLIENT }, "invalid_request" },
    { "/oauth/deauthorize", { stripe_user_id = "acct_1" }, "invalid_request" },
  }
  for _, row in ipairs(rows) do
    local res = http.post_form(fake.url .. row[1], row[2], auth)
    lu.assertEquals(res.status, 400, row[1])
    local body = decode(res)
    lu.assertEquals(body.error, row[3], row[1])
    if row[4] then lu.assertEquals(body.error_description, row[4]) end
  end
  local res = http.post_form(fake.url .. "/oauth/token", { grant_type = "authorization_code", code = "x" })
  lu.assertEquals(res.status, 401)
  lu.assertEquals(decode(res).error, "invalid_client")
  -- our client cannot even send them: misuse raises
  lu.assertErrorMsgContains("option 'code' is required", oauth.token, { secret_key = SK, code = "" })
end

function TestOAuthFake.test_refresh()
  local t = connect()
  local same = assert(call(oauth.refresh, { refresh_token = t.refresh_token }))
  lu.assertEquals(same.stripe_user_id, t.stripe_user_id)
  lu.assertEquals(same.scope, "read_write")
  lu.assertNotEquals(same.access_token, t.access_token)
  local narrower = assert(call(oauth.refresh, { refresh_token = t.refresh_token, scope = "read_only" }))
  lu.assertEquals(narrower.scope, "read_only")
  local ro = connect{ scope = "read_only" }
  local res, err = call(oauth.refresh, { refresh_token = ro.refresh_token, scope = "read_write" })
  lu.assertNil(res)
  assert_oauth_error(err, "invalid_scope", 400, "wider scope")
  lu.assertEquals(err.attempts, 1)
  res, err = call(oauth.refresh, { refresh_token = "rt_unknown" })
  assert_oauth_error(err, "invalid_grant", 400, "unknown refresh token")
end

function TestOAuthFake.test_deauthorize_and_not_connected()
  local t = connect()
  local res, err = call(oauth.deauthorize, { client_id = CLIENT, stripe_user_id = t.stripe_user_id })
  lu.assertNil(err)
  lu.assertEquals(res, { stripe_user_id = t.stripe_user_id })
  res, err = call(oauth.deauthorize, { client_id = CLIENT, stripe_user_id = t.stripe_user_id })
  lu.assertNil(res)
  assert_oauth_error(err, "invalid_client", 401)
  lu.assertStrContains(err.description, "not connected")
  lu.assertEquals(err.attempts, 1)
  res, err = call(oauth.deauthorize, { client_id = "ca_not_ours", stripe_user_id = "acct_never" })
  assert_oauth_error(err, "invalid_client", 401, "other client_id")
  res, err = call(oauth.refresh, { refresh_token = t.refresh_token })
  assert_oauth_error(err, "invalid_grant", 400, "refresh after deauthorize")
end

function TestOAuthFake.test_fake_answering_500()
  -- refresh: two 500s, then the real answer (retried with backoff)
  local t = connect()
  fake_post("/__fake/faults", { path = "/oauth/token", status = "500", count = "2" })
  local sleeps = {}
  local res, err = call(oauth.refresh, { refresh_token = t.refresh_token }, sleeps)
  lu.assertNil(err)
  lu.assertEquals(res.stripe_user_id, t.stripe_user_id)
  lu.assertEquals(sleeps, { 0.5, 1 })
  -- deauthorize: 503 and 429 are retried too; attempts=2 gives up with the last answer
  fake_post("/__fake/faults", { path = "/oauth/deauthorize", status = "503", count = "1" })
  fake_post("/__fake/faults", { path = "/oauth/deauthorize", status = "429", count = "1" })
  res, err = call(oauth.deauthorize, { client_id = CLIENT, stripe_user_id = t.stripe_user_id, attempts = 2 })
  lu.assertNil(res)
  lu.assertEquals(err.status, 429)
  lu.assertEquals(err.attempts, 2)
  -- token: a 500 is never retried; the code was not spent (the fault answered first)
  local code = new_code()
  fake_post("/__fake/faults", { path = "/oauth/token", status = "500", count = "5" })
  res, err = call(oauth.token, { code = code })
  lu.assertNil(res)
  lu.assertEquals(err.type, "api")
  lu.assertEquals(err.status, 500)
  lu.assertEquals(err.attempts, 1)
  local log = requests_log()
  lu.assertEquals(log[#log].fault, true)
  lu.assertEquals(log[#log].path, "/oauth/token")
  http.request{ method = "DELETE", url = fake.url .. "/__fake/faults" }
  lu.assertNotNil(call(oauth.token, { code = code }))
end

function TestOAuthFake.test_slow_fake_past_the_timeout_is_not_retried()
  local code = new_code()
  fake_post("/__fake/faults", { path = "/oauth/token", delay = "3" })
  local before = #requests_log()
  local res, err = call(oauth.token, { code = code, timeout = 1 })
  lu.assertNil(res)
  lu.assertEquals(err.type, "transport")
  lu.assertEquals(err.code, "timeout")
  lu.assertEquals(err.attempts, 1)
  -- the fake still processed that one request (as Stripe may have): poll for it
  local log = server.poll(function()
    local l = requests_log()
    return #l > before and l
  end, 10)
  lu.assertNotNil(log, "the fake never logged the slow request")
  lu.assertEquals(#log, before + 1)
  lu.assertEquals(log[#log].code, code)
  lu.assertEquals(log[#log].status, 200)
end

function TestOAuthFake.test_fake_stopped()
  local gone = server.start{ app = "scripts/fake_connect.lua", args = { "--workers", "1" } }
  local url = gone.url
  gone:stop()
  local rows = {
    { "token", oauth.token, { code = "ac_1" }, 2, { 0.5 } },
    { "refresh", oauth.refresh, { refresh_token = "rt_1" }, 3, { 0.5, 1 } },
    { "deauthorize", oauth.deauthorize, { client_id = CLIENT, stripe_user_id = "acct_1" }, 3, { 0.5, 1 } },
  }
  for _, row in ipairs(rows) do
    local sleeps = {}
    row[3].connect_base, row[3].attempts = url, row[4]
    local res, err = call(row[2], row[3], sleeps)
    lu.assertNil(res, row[1])
    lu.assertEquals(err.type, "transport", row[1])
    lu.assertEquals(err.code, "connect", row[1])
    lu.assertEquals(err.attempts, row[4], row[1])
    lu.assertEquals(sleeps, row[5], row[1])
  end
end

function TestOAuthFake.test_requests_log_holds_no_secret()
  connect()
  local res = http.get(fake.url .. "/__fake/requests")
  lu.assertNil(res.body:find(SK, 1, true))
  lu.assertNil(res.body:find("oauth_fake_spec", 1, true))
  local log = decode(res).data
  lu.assertTrue(#log > 0)
  for _, r in ipairs(log) do
    lu.assertNotNil(r.path)
    lu.assertNotNil(r.status)
  end
end

function TestOAuthFake.test_disconnect_delivers_a_signed_event()
  local t = connect()
  local res = http.post_form(fake.url .. "/__fake/accounts/" .. t.stripe_user_id .. "/disconnect", {})
  lu.assertEquals(res.status, 200, res.body)
  local answer = decode(res)
  lu.assertEquals(answer.delivery.status, 200, res.body)
  local got = decode(http.get(sink.url .. "/received")).data
  local last = got[#got]
  lu.assertTrue(last.verified)
  lu.assertEquals(last.type, "account.application.deauthorized")
  lu.assertEquals(last.account, t.stripe_user_id)
  lu.assertEquals(last.application, CLIENT)
  lu.assertEquals(last.signatures, 2)
  lu.assertEquals(last.id, answer.event.id)
  local _, err = call(oauth.deauthorize, { client_id = CLIENT, stripe_user_id = t.stripe_user_id })
  assert_oauth_error(err, "invalid_client", 401, "deauthorize after the user disconnected")
end

-- Neither server's log (the access log and anything a handler writes to
-- stderr) nor our error messages hold a key, a code or a token, whatever
-- the outcome: success, reuse, unknown code, wrong key, refresh.
function TestOAuthFake.test_logs_and_errors_hold_no_secret()
  local wrong_key = "sk_test_wrong_key_for_the_log_check"
  local t = connect()
  local code = new_code()
  local errors = {}
  for _, o in ipairs{ { code = code }, { code = code }, { code = "ac_unknown_for_the_log_check" },
                      { code = new_code(), secret_key = wrong_key } } do
    local _, err = call(oauth.token, o)
    errors[#errors + 1] = err and tostring(err) or ""
  end
  local r, err = call(oauth.refresh, { refresh_token = t.refresh_token })
  lu.assertNil(err)
  local _, rerr = call(oauth.refresh, { refresh_token = "rt_unknown_for_the_log_check" })
  errors[#errors + 1] = tostring(rerr)
  local secrets = { SK, wrong_key, code, "ac_unknown_for_the_log_check", "rt_unknown_for_the_log_check",
                    t.access_token, t.refresh_token, r.access_token, r.refresh_token }
  local logs = { fake = fake:log_text(), sink = sink:log_text(), errors = table.concat(errors, "\n") }
  lu.assertStrContains(logs.fake, 'path="/oauth/token"')
  lu.assertStrContains(logs.errors, "[redacted]")
  for name, text in pairs(logs) do
    for _, secret in ipairs(secrets) do
      lu.assertNil(text:find(secret, 1, true), name .. " holds " .. secret)
    end
  end
end

-- The seed page's curl lines (docs.stripe.com/connect/oauth-standard-accounts),
-- verbatim but for the host and the `<>` key placeholder.
local SEED_TOKEN = [[curl https://connect.stripe.com/oauth/token \
  -u <>: \
  -d "code"="ac_123456789" \
  -d "grant_type"="authorization_code"]]
local SEED_DEAUTHORIZE = [[curl https://connect.stripe.com/oauth/deauthorize \
  -u <>: \
  -d client_id="ca_FkyHCg7X8mlvCUdMDao4mMxagUfhIwXb" \
  -d stripe_user_id=acct_ON3nXtRQkhmUIQ]]

local function curl(line)
  line = line:gsub("https://connect%.stripe%.com", fake.url):gsub("<>:", SK .. ":")
  local p = assert(io.popen(line .. " -sS -w '\\n%{http_code}' 2>&1", "r"))
  local out = p:read("a")
  p:close()
  local body, status = out:match("^(.*)\n(%d+)$")
  return tonumber(status), body or out
end

function TestOAuthFake.test_seed_curl_lines()
  lu.skipIf(not io.popen("command -v curl"):read("a"):find("curl"), "curl CLI is not installed")
  local status, body = curl(SEED_TOKEN)
  lu.assertEquals(status, 400, body)
  lu.assertEquals(cjson.decode(body), { error = "invalid_grant",
    error_description = "Authorization code does not exist: ac_123456789" })
  -- the same line with a real code
  local code = new_code{ account = SEED_ACCOUNT }
  status, body = curl((SEED_TOKEN:gsub("ac_123456789", code)))
  lu.assertEquals(status, 200, body)
  local t = cjson.decode(body)
  lu.assertEquals(t.stripe_user_id, SEED_ACCOUNT)
  lu.assertEquals(t.token_type, "bearer")
  lu.assertEquals(t.scope, "read_write")
  lu.assertEquals(t.livemode, false)
  status, body = curl(SEED_DEAUTHORIZE)
  lu.assertEquals(status, 200, body)
  lu.assertEquals(cjson.decode(body), { stripe_user_id = SEED_ACCOUNT })
  status, body = curl(SEED_DEAUTHORIZE)
  lu.assertEquals(status, 401, body)
  lu.assertEquals(cjson.decode(body).error, "invalid_client")
end

return { TestOAuthFake = TestOAuthFake }
