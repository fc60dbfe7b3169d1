-- stripe_connect.fake driven directly through its handler (no server): the
-- authorize validation, consent page, decide redirects, token / refresh /
-- deauthorize rules, the /__fake/ controls and the deauthorized event.
-- The over-the-wire behaviour is in spec/integration/oauth_fake_spec.lua.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local fake = require "stripe_connect.fake"
local webhook = require "stripe_connect.webhook"

local T0 = 1700000000
local CLIENT = "ca_spec_client"
local SK = "sk_test_spec_key"
local SK_LIVE = "sk_live_spec_key"
local REDIRECT = "https://platform.example/oauth/callback"

-- A fake with a settable clock and a recording webhook transport.
local function setup(over)
  local env = { now = T0, posts = {}, sleeps = {} }
  local config = {
    client_id = CLIENT, secret_key = SK,
    redirect_uris = { REDIRECT, "https://platform.example/other" },
    webhook_url = "http://127.0.0.1:1/webhooks",
    webhook_secrets = { "whsec_a", "whsec_b" },
    platform_name = "Spec <Platform>",
    clock = function() return env.now end,
    http_request = function(req) env.posts[#env.posts + 1] = req; return { status = 200, headers = {}, body = "" } end,
    sleep = function(s) env.sleeps[#env.sleeps + 1] = s end,
  }
  for k, v in pairs(over or {}) do config[k] = v end
  env.fake = fake.new(config)
  env.h = env.fake:handler()
  return env
end

local function basic(key) return "Basic " .. core.base64_encode(key .. ":") end

local function call(env, method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  local query = opts.query or ""
  return env.h{ method = method, path = path, query = query, args = core.parse_query(query),
                headers = headers, body = opts.body or "" }
end

local function decode(res) return cjson.decode(res.body) end

local function query_of(location)
  return core.parse_query(location:match("%?(.*)$") or "")
end

local AUTHORIZE = "response_type=code&client_id=" .. CLIENT .. "&scope=read_write&state=st_1"

local function approve(env, extra)
  local res = call(env, "POST", "/oauth/authorize/decide",
    { body = AUTHORIZE .. "&decision=approve" .. (extra or "") })
  lu.assertEquals(res.status, 302)
  return query_of(res.headers.Location).code, res
end

local function token(env, body, key)
  return call(env, "POST", "/oauth/token", { body = body, headers = { Authorization = basic(key or SK) } })
end

local TestFake = {}

function TestFake.test_config_from_env()
  local env = { FAKE_CLIENT_ID = "ca_x", FAKE_SECRET_KEY = "sk_live_y", FAKE_REDIRECT_URIS = " https://a/cb , https://b/cb ",
                FAKE_WEBHOOK_URL = "http://127.0.0.1:9/wh", FAKE_WEBHOOK_SECRETS = "whsec_1,whsec_2", FAKE_PLATFORM_NAME = "" }
  local c = fake.config_from_env(function(k) return env[k] end)
  lu.assertEquals(c, { client_id = "ca_x", secret_key = "sk_live_y", redirect_uris = { "https://a/cb", "https://b/cb" },
    webhook_url = "http://127.0.0.1:9/wh", webhook_secrets = { "whsec_1", "whsec_2" },
    platform_name = fake.DEFAULTS.platform_name })
  local d = fake.config_from_env(function() return nil end)
  lu.assertStrMatches(d.client_id, "ca_fake.*")
  lu.assertStrMatches(d.secret_key, "sk_test_fake.*")
  lu.assertNil(d.webhook_url)
  lu.assertErrorMsgContains("sk_test_ or sk_live_", fake.new, { client_id = "ca_1", secret_key = "rk_test_1" })
  lu.assertErrorMsgContains("unknown option", fake.new, { client_id = "ca_1", secret_key = SK, bogus = 1 })
end

function TestFake.test_authorize_errors_are_json_not_redirects()
  local env = setup()
  local base = "client_id=" .. CLIENT .. "&response_type=code"
  local rows = {
    { "missing response_type", "client_id=" .. CLIENT .. "&state=s1", "invalid_request", "Missing response_type parameter.", "s1" },
    { "bad response_type", "client_id=" .. CLIENT .. "&response_type=token",
      "unsupported_response_type", "Only 'code' response_type is supported, but 'token' was provided" },
    { "missing client_id", "response_type=code", "invalid_request" },
    { "unknown client_id", "response_type=code&client_id=ca_other", "invalid_request" },
    { "bad scope", base .. "&scope=invalid_scope", "invalid_scope", "Invalid scope provided: invalid_scope." },
    { "unregistered redirect_uri", base .. "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb", "invalid_redirect_uri" },
    { "redirect_uri prefix only", base .. "&redirect_uri=https%3A%2F%2Fplatform.example%2Foauth%2Fcallback%2Fx",
      "invalid_redirect_uri" },
    { "repeated client_id", base .. "&client_id=" .. CLIENT, "invalid_request" },
  }
  for _, row in ipairs(rows) do
    local res = call(env, "GET", "/oauth/authorize", { query = row[2] })
    lu.assertEquals(res.status, 400, row[1])
    lu.assertNil(res.headers.Location, row[1])
    lu.assertStrContains(res.headers["Content-Type"], "application/json", false, row[1])
    local body = decode(res)
    lu.assertEquals(body.error, row[3], row[1])
    if row[4] then lu.assertEquals(body.error_description, row[4], row[1]) end
    if row[5] then lu.assertEquals(body.state, row[5], row[1]) end
  end
end

function TestFake.test_consent_page_escapes_and_carries_parameters()
  local env = setup()
  local res = call(env, "GET", "/oauth/authorize", { query = "response_type=code&client_id=" .. CLIENT ..
    "&scope=read_write&state=%22%3E%3Cimg&stripe_user[email]=a%40b.example" ..
    "&stripe_user[business_name]=%3Cscript%3Ealert(1)%3C%2Fscript%3E&always_prompt=true" })
  lu.assertEquals(res.status, 200)
  lu.assertStrContains(res.headers["Content-Type"], "text/html")
  lu.assertStrContains(res.headers["Content-Security-Policy"], "default-src 'none'")
  local b = res.body
  lu.assertNil(b:find("<script>", 1, true))
  lu.assertNil(b:find('"><img', 1, true))
  lu.assertStrContains(b, "&lt;script&gt;alert(1)&lt;/script&gt;")
  lu.assertStrContains(b, "Spec &lt;Platform&gt;")
  lu.assertStrContains(b, "read_write")
  lu.assertStrContains(b, "a@b.example")
  lu.assertStrContains(b, 'name="decision" value="approve"')
  lu.assertStrContains(b, 'name="decision" value="deny"')
  lu.assertStrContains(b, '<input type="hidden" name="state" value="&quot;&gt;&lt;img">')
  lu.assertStrContains(b, '<input type="hidden" name="always_prompt" value="true">')
  lu.assertNil(b:find("https?://[%w.]+/[%w/]*%.[jc]ss?"), "no third-party assets")
  lu.assertNil(b:find("src=", 1, true))
end

function TestFake.test_decide_redirects()
  local env = setup()
  local code, res = approve(env)
  local q = query_of(res.headers.Location)
  lu.assertStrMatches(res.headers.Location, "https://platform%.example/oauth/callback%?scope=read_write&code=ac_%w+&state=st_1")
  lu.assertStrMatches(code, "ac_%w+")
  lu.assertEquals(q.scope, "read_write")
  -- deny: documented error redirect, state echoed
  res = call(env, "POST", "/oauth/authorize/decide", { body = AUTHORIZE .. "&decision=deny" })
  lu.assertEquals(res.status, 302)
  lu.assertEquals(res.headers.Location, REDIRECT ..
    "?error=access_denied&error_description=The%20user%20denied%20your%20request&state=st_1")
  -- redirect_uri chosen, default scope read_only, given account
  res = call(env, "POST", "/oauth/authorize/decide", { body = "response_type=code&client_id=" .. CLIENT ..
    "&redirect_uri=https%3A%2F%2Fplatform.example%2Fother&decision=approve&account=acct_GIVEN1" })
  lu.assertStrMatches(res.headers.Location, "https://platform%.example/other%?scope=read_only&code=ac_%w+")
  local got = decode(token(env, "grant_type=authorization_code&code=" .. query_of(res.headers.Location).code))
  lu.assertEquals(got.stripe_user_id, "acct_GIVEN1")
  lu.assertEquals(got.scope, "read_only")
  -- invalid decision / account / parameters: JSON, no redirect
  for _, body in ipairs{ AUTHORIZE .. "&decision=maybe", AUTHORIZE .. "&decision=approve&account=bob",
                         "client_id=" .. CLIENT .. "&decision=approve" } do
    res = call(env, "POST", "/oauth/authorize/decide", { body = body })
    lu.assertEquals(res.status, 400, body)
    lu.assertNil(res.headers.Location, body)
  end
end

function TestFake.test_live_mode_requires_https_redirect()
  local env = setup{ secret_key = SK_LIVE, redirect_uris = { "http://127.0.0.1:8080/cb" } }
  local res = call(env, "GET", "/oauth/authorize", { query = "response_type=code&client_id=" .. CLIENT })
  lu.assertEquals(decode(res).error, "invalid_redirect_uri")
end

function TestFake.test_token_success_fields()
  local env = setup()
  local code = approve(env)
  local res = token(env, "code=" .. code .. "&grant_type=authorization_code")
  lu.assertEquals(res.status, 200)
  local t = decode(res)
  lu.assertEquals(t.token_type, "bearer")
  lu.assertEquals(t.scope, "read_write")
  lu.assertEquals(t.livemode, false)
  lu.assertStrMatches(t.stripe_user_id, "acct_%w+")
  lu.assertStrMatches(t.access_token, "sk_test_%w+")
  lu.assertStrMatches(t.refresh_token, "rt_%w+")
  lu.assertStrMatches(t.stripe_publishable_key, "pk_test_%w+")
end

-- issued_log: every code, access token and refresh token issued, one a line.
function TestFake.test_issued_log_lists_codes_and_tokens()
  local path = os.tmpname()
  local env = setup{ issued_log = path }
  local code = approve(env)
  local t = decode(token(env, "code=" .. code .. "&grant_type=authorization_code"))
  local r = decode(token(env, "refresh_token=" .. t.refresh_token .. "&grant_type=refresh_token"))
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  os.remove(path)
  lu.assertEquals(text, table.concat({ code, t.refresh_token, t.access_token, r.access_token }, "\n") .. "\n")
  lu.assertEquals(fake.config_from_env(function(k) return k == "FAKE_ISSUED_LOG" and path or nil end).issued_log, path)
end

function TestFake.test_token_auth_methods()
  local env = setup()
  local rows = {
    { "basic", { Authorization = basic(SK) }, "", 200 },
    { "basic user:password form", { Authorization = "Basic " .. core.base64_encode(SK .. ":ignored") }, "", 200 },
    { "bearer", { Authorization = "Bearer " .. SK }, "", 200 },
    { "client_secret", {}, "&client_secret=" .. SK, 200 },
    { "none", {}, "", 401 },
    { "wrong key", { Authorization = basic("sk_test_wrong") }, "", 401 },
    { "malformed basic", { Authorization = "Basic !!!" }, "", 401 },
    { "empty client_secret", {}, "&client_secret=", 401 },
  }
  for _, row in ipairs(rows) do
    local code = approve(env)
    local res = call(env, "POST", "/oauth/token", { headers = row[2],
      body = "grant_type=authorization_code&code=" .. code .. row[3] })
    lu.assertEquals(res.status, row[4], row[1])
    if row[4] == 401 then
      lu.assertEquals(decode(res).error, "invalid_client", row[1])
      lu.assertNil(res.body:find("sk_test_wrong", 1, true), row[1])
    end
  end
  lu.assertEquals(decode(call(env, "POST", "/oauth/token", { body = "grant_type=authorization_code&code=x" }))
    .error_description, "No authentication was provided. Send your secret API key using the Authorization " ..
    "header, or as a client_secret POST parameter.")
end

function TestFake.test_code_reuse_revokes_connection()
  local env = setup()
  local code = approve(env)
  local first = decode(token(env, "grant_type=authorization_code&code=" .. code))
  local acct = first.stripe_user_id
  local res = token(env, "grant_type=authorization_code&code=" .. code)
  lu.assertEquals(res.status, 400)
  lu.assertEquals(decode(res), { error = "invalid_grant", error_description =
    "This authorization code has already been used. All tokens issued with this code have been revoked." })
  -- the connection is gone: its refresh token and deauthorize fail
  lu.assertEquals(decode(token(env, "grant_type=refresh_token&refresh_token=" .. first.refresh_token)).error, "invalid_grant")
  res = call(env, "POST", "/oauth/deauthorize", { headers = { Authorization = basic(SK) },
    body = "client_id=" .. CLIENT .. "&stripe_user_id=" .. acct })
  lu.assertEquals(res.status, 401)
  lu.assertEquals(decode(res).error, "invalid_client")
  local accounts = decode(call(env, "GET", "/__fake/accounts")).data
  lu.assertEquals(accounts, { { id = acct, connected = false, scope = "read_write", livemode = false } })
end

function TestFake.test_code_rules()
  local env = setup()
  local rows = {
    { "unknown code", function() return "ac_123456789" end, SK, 400, "invalid_grant",
      "Authorization code does not exist: ac_123456789" },
    { "expired after 5 minutes", function() local c = approve(env); env.now = env.now + 300; return c end,
      SK, 400, "invalid_grant" },
    { "still valid at 299 s", function() local c = approve(env); env.now = env.now + 299; return c end, SK, 200 },
    { "live key, test code", function() return approve(env) end, SK_LIVE, 400, "invalid_grant" },
  }
  for _, row in ipairs(rows) do
    local code = row[2]()
    local res = token(env, "grant_type=authorization_code&code=" .. code, row[3])
    lu.assertEquals(res.status, row[4], row[1])
    if row[5] then lu.assertEquals(decode(res).error, row[5], row[1]) end
    if row[6] then lu.assertEquals(decode(res).error_description, row[6], row[1]) end
  end
  -- a wrong-mode attempt does not spend the code
  local code = approve(env)
  lu.assertEquals(token(env, "grant_type=authorization_code&code=" .. code, SK_LIVE).status, 400)
  lu.assertEquals(token(env, "grant_type=authorization_code&code=" .. code).status, 200)
end

function TestFake.test_token_parameter_errors()
  local env = setup()
  local rows = {
    { "no grant_type", "code=ac_1", "invalid_request", "No grant type specified" },
    { "unsupported grant", "grant_type=password", "unsupported_grant_type" },
    { "no code", "grant_type=authorization_code", "invalid_request" },
    { "no refresh_token", "grant_type=refresh_token", "invalid_request" },
    { "unknown refresh_token", "grant_type=refresh_token&refresh_token=rt_nope", "invalid_grant" },
  }
  for _, row in ipairs(rows) do
    local res = token(env, row[2])
    lu.assertEquals(res.status, 400, row[1])
    lu.assertEquals(decode(res).error, row[3], row[1])
    if row[4] then lu.assertEquals(decode(res).error_description, row[4], row[1]) end
  end
end

function TestFake.test_refresh_scopes_and_modes()
  local env = setup()
  local t = decode(token(env, "grant_type=authorization_code&code=" .. approve(env)))
  local rt = "grant_type=refresh_token&refresh_token=" .. t.refresh_token
  local same = decode(token(env, rt))
  lu.assertEquals(same.scope, "read_write")
  lu.assertEquals(same.stripe_user_id, t.stripe_user_id)
  lu.assertNotEquals(same.access_token, t.access_token)
  lu.assertEquals(decode(token(env, rt .. "&scope=read_only")).scope, "read_only")
  lu.assertEquals(decode(token(env, rt .. "&scope=admin")).error, "invalid_scope")
  lu.assertEquals(decode(token(env, rt, SK_LIVE)).error, "invalid_grant") -- live key, test token
  -- read_only connection: read_write is wider
  local res = call(env, "POST", "/oauth/authorize/decide", { body = "response_type=code&client_id=" .. CLIENT ..
    "&scope=read_only&decision=approve" })
  local ro = decode(token(env, "grant_type=authorization_code&code=" .. query_of(res.headers.Location).code))
  res = token(env, "grant_type=refresh_token&refresh_token=" .. ro.refresh_token .. "&scope=read_write")
  lu.assertEquals(res.status, 400)
  lu.assertEquals(decode(res).error, "invalid_scope")
  -- a live connection's refresh token mints test tokens with the test key
  local live = setup{ secret_key = SK_LIVE }
  local lt = decode(token(live, "grant_type=authorization_code&code=" .. approve(live), SK_LIVE))
  lu.assertEquals(lt.livemode, true)
  local minted = decode(token(live, "grant_type=refresh_token&refresh_token=" .. lt.refresh_token, SK))
  lu.assertEquals(minted.livemode, false)
  lu.assertStrMatches(minted.access_token, "sk_test_%w+")
end

function TestFake.test_deauthorize()
  local env = setup()
  local t = decode(token(env, "grant_type=authorization_code&code=" .. approve(env)))
  local function deauth(body, key)
    return call(env, "POST", "/oauth/deauthorize", { headers = { Authorization = basic(key or SK) }, body = body })
  end
  local ok_body = "client_id=" .. CLIENT .. "&stripe_user_id=" .. t.stripe_user_id
  local rows = {
    { "missing stripe_user_id", "client_id=" .. CLIENT, nil, 400, "invalid_request" },
    { "missing client_id", "stripe_user_id=" .. t.stripe_user_id, nil, 400, "invalid_request" },
    { "other client_id", "client_id=ca_other&stripe_user_id=" .. t.stripe_user_id, nil, 401, "invalid_client" },
    { "wrong mode key", ok_body, SK_LIVE, 401, "invalid_client" },
    { "wrong key", ok_body, "sk_test_nope", 401, "invalid_client" },
    { "success", ok_body, nil, 200 },
    { "not connected any more", ok_body, nil, 401, "invalid_client" },
  }
  for _, row in ipairs(rows) do
    local res = deauth(row[2], row[3])
    lu.assertEquals(res.status, row[4], row[1])
    if row[5] then lu.assertEquals(decode(res).error, row[5], row[1])
    else lu.assertEquals(decode(res), { stripe_user_id = t.stripe_user_id }, row[1]) end
  end
  lu.assertEquals(decode(deauth("client_id=" .. CLIENT .. "&stripe_user_id=acct_ON3nXtRQkhmUIQ")).error_description,
    "This application is not connected to stripe account acct_ON3nXtRQkhmUIQ, or that account does not exist.")
  lu.assertEquals(decode(token(env, "grant_type=refresh_token&refresh_token=" .. t.refresh_token)).error, "invalid_grant")
end

-- doc/PROTOCOL.md §1–3 row by row: status, error code and the description text
-- wherever PROTOCOL quotes one (Stripe's docs or the SDK fixtures).
function TestFake.test_protocol_rows_verbatim()
  local env = setup()
  local t = decode(token(env, "grant_type=authorization_code&code=" .. approve(env)))
  local rt = "grant_type=refresh_token&refresh_token=" .. t.refresh_token
  local function authorize(q) return call(env, "GET", "/oauth/authorize", { query = q }) end
  local function deauth(body) return call(env, "POST", "/oauth/deauthorize",
    { headers = { Authorization = basic(SK) }, body = body }) end
  local rows = {
    -- §1 authorize (JSON, never a redirect)
    { "§1 invalid_request", authorize("client_id=" .. CLIENT), 400, "invalid_request",
      "Missing response_type parameter." },
    { "§1 unsupported_response_type", authorize("client_id=" .. CLIENT .. "&response_type=unsupported_response_type"),
      400, "unsupported_response_type",
      "Only 'code' response_type is supported, but 'unsupported_response_type' was provided" },
    { "§1 invalid_scope", authorize("response_type=code&client_id=" .. CLIENT .. "&scope=invalid_scope"),
      400, "invalid_scope", "Invalid scope provided: invalid_scope." },
    { "§1 invalid_redirect_uri", authorize("response_type=code&client_id=" .. CLIENT ..
      "&redirect_uri=https%3A%2F%2Fevil.example%2F"), 400, "invalid_redirect_uri" },
    -- §2 token
    { "§2 invalid_client (no key)", call(env, "POST", "/oauth/token", { body = "grant_type=authorization_code&code=x" }),
      401, "invalid_client", "No authentication was provided. Send your secret API key using the " ..
      "Authorization header, or as a client_secret POST parameter." },
    { "§2 invalid_request (no grant_type)", token(env, "code=ac_123456789"), 400, "invalid_request",
      "No grant type specified" },
    { "§2 invalid_grant (unknown code)", token(env, "code=ac_123456789&grant_type=authorization_code"),
      400, "invalid_grant", "Authorization code does not exist: ac_123456789" },
    { "§2 unsupported_grant_type", token(env, "grant_type=client_credentials"), 400, "unsupported_grant_type",
      "Unsupported grant type: client_credentials. The only currently supported types are " ..
      "authorization_code and refresh_token." },
    { "§2 invalid_scope (refresh)", token(env, rt .. "&scope=invalid_scope"), 400, "invalid_scope",
      "Invalid scope provided: invalid_scope." },
    -- §3 deauthorize
    { "§3 invalid_request", deauth("client_id=" .. CLIENT), 400, "invalid_request",
      "No client_id or stripe_user_id parameter provided" },
    { "§3 invalid_client (not connected)", deauth("client_id=" .. CLIENT .. "&stripe_user_id=acct_19tLK7DSlTMT26Mk"),
      401, "invalid_client", "This application is not connected to stripe account acct_19tLK7DSlTMT26Mk, " ..
      "or that account does not exist." },
  }
  for _, row in ipairs(rows) do
    local res = row[2]
    lu.assertEquals(res.status, row[3], row[1])
    lu.assertEquals(res.headers["Content-Type"], "application/json", row[1])
    lu.assertNil(res.headers.Location, row[1])
    local body = decode(res)
    lu.assertEquals(body.error, row[4], row[1])
    lu.assertEquals(type(body.error_description), "string", row[1])
    if row[5] then lu.assertEquals(body.error_description, row[5], row[1]) end
  end
end

-- §2: scope "has no effect when requesting an access token from an
-- authorization code"; a refresh revokes the previous access token of the
-- same scope and mode (seen through /v1/account).
function TestFake.test_scope_ignored_on_code_exchange_and_refresh_revokes_old_token()
  local env = setup()
  local t = decode(token(env, "grant_type=authorization_code&scope=read_only&code=" .. approve(env)))
  lu.assertEquals(t.scope, "read_write")
  local function account_with(access)
    return call(env, "GET", "/v1/account", { headers = { Authorization = "Bearer " .. access } }).status
  end
  lu.assertEquals(account_with(t.access_token), 200)
  local r = decode(token(env, "grant_type=refresh_token&refresh_token=" .. t.refresh_token))
  lu.assertEquals(account_with(r.access_token), 200)
  lu.assertEquals(account_with(t.access_token), 401)
  -- a narrower token leaves the read_write one alone
  local narrow = decode(token(env, "grant_type=refresh_token&scope=read_only&refresh_token=" .. t.refresh_token))
  lu.assertEquals(narrow.scope, "read_only")
  lu.assertEquals(account_with(r.access_token), 200)
  lu.assertEquals(account_with(narrow.access_token), 200)
end

function TestFake.test_requests_log_never_holds_the_secret()
  local env = setup()
  local code = approve(env)
  token(env, "grant_type=authorization_code&code=" .. code)
  token(env, "grant_type=authorization_code&code=" .. code)
  call(env, "POST", "/oauth/token", { body = "grant_type=authorization_code&code=x&client_secret=" .. SK })
  local res = call(env, "GET", "/__fake/requests")
  lu.assertNil(res.body:find(SK, 1, true))
  local data = decode(res).data
  lu.assertEquals(#data, 3)
  lu.assertEquals(data[1].path, "/oauth/token")
  lu.assertEquals(data[1].grant_type, "authorization_code")
  lu.assertEquals(data[1].code, code)
  lu.assertEquals(data[1].status, 200)
  lu.assertEquals(data[1].auth, "basic")
  lu.assertStrMatches(data[1].stripe_user_id, "acct_%w+")
  lu.assertEquals(data[2].status, 400)
  lu.assertEquals(data[3].auth, "client_secret")
  call(env, "POST", "/__fake/reset")
  lu.assertEquals(call(env, "GET", "/__fake/requests").body, '{"data":[]}')
end

function TestFake.test_clock()
  local env = setup()
  lu.assertEquals(decode(call(env, "GET", "/__fake/clock")), { now = T0, offset = 0 })
  lu.assertEquals(decode(call(env, "POST", "/__fake/clock", { body = "advance=301" })), { now = T0 + 301, offset = 301 })
  lu.assertEquals(call(env, "POST", "/__fake/clock", { body = "advance=soon" }).status, 400)
  lu.assertEquals(call(env, "POST", "/__fake/clock", { body = "advance=inf" }).status, 400)
end

function TestFake.test_faults()
  local env = setup()
  lu.assertEquals(call(env, "POST", "/__fake/faults", { body = "path=/oauth/token&status=500&count=2" }).status, 200)
  lu.assertEquals(call(env, "POST", "/__fake/faults", { body = "path=/oauth/token&delay=2.5" }).status, 200)
  local code = approve(env)
  lu.assertEquals(token(env, "grant_type=authorization_code&code=" .. code).status, 500)
  lu.assertEquals(token(env, "grant_type=authorization_code&code=" .. code).status, 500)
  lu.assertEquals(token(env, "grant_type=authorization_code&code=" .. code).status, 200) -- after the delay
  lu.assertEquals(env.sleeps, { 2.5 })
  lu.assertEquals(token(env, "grant_type=authorization_code&code=" .. code).status, 400)
  local data = decode(call(env, "GET", "/__fake/requests")).data
  lu.assertEquals(data[1].fault, true)
  lu.assertEquals(data[1].status, 500)
  for _, bad in ipairs{ "status=99", "delay=-1", "status=500&count=0", "status=500&path=/x", "path=/oauth/token" } do
    lu.assertEquals(call(env, "POST", "/__fake/faults", { body = bad }).status, 400, bad)
  end
  call(env, "POST", "/__fake/faults", { body = "status=503" })
  call(env, "DELETE", "/__fake/faults")
  lu.assertEquals(token(env, "grant_type=authorization_code&code=nope").status, 400)
end

function TestFake.test_disconnect_sends_signed_event()
  local env = setup()
  local t = decode(token(env, "grant_type=authorization_code&code=" .. approve(env, "&account=acct_DISC1")))
  local res = call(env, "POST", "/__fake/accounts/acct_DISC1/disconnect", { body = "event_id=evt_spec_1" })
  lu.assertEquals(res.status, 200)
  local answer = decode(res)
  lu.assertEquals(answer.stripe_user_id, "acct_DISC1")
  lu.assertEquals(answer.delivery.status, 200)
  lu.assertEquals(#env.posts, 1)
  local post = env.posts[1]
  lu.assertEquals(post.method, "POST")
  lu.assertEquals(post.url, "http://127.0.0.1:1/webhooks")
  local event = cjson.decode(post.body)
  lu.assertEquals(event.id, "evt_spec_1")
  lu.assertEquals(event.type, "account.application.deauthorized")
  lu.assertEquals(event.account, "acct_DISC1")
  lu.assertEquals(event.data.object, { id = CLIENT, object = "application", name = "Spec <Platform>" })
  lu.assertEquals(event.livemode, false)
  local sig = post.headers["Stripe-Signature"]
  local _, v1s = sig:gsub("v1=", "")
  lu.assertEquals(v1s, 2)
  lu.assertTrue(webhook.verify(post.body, sig, { "whsec_a" }) == true)
  lu.assertTrue(webhook.verify(post.body, sig, { "whsec_b" }) == true)
  -- the connection ended; a second disconnect needs force
  lu.assertEquals(decode(token(env, "grant_type=refresh_token&refresh_token=" .. t.refresh_token)).error, "invalid_grant")
  lu.assertEquals(call(env, "POST", "/__fake/accounts/acct_DISC1/disconnect").status, 404)
  lu.assertEquals(call(env, "POST", "/__fake/accounts/acct_DISC1/disconnect", { body = "force=true" }).status, 200)
  lu.assertEquals(#env.posts, 2)
  lu.assertEquals(#decode(call(env, "GET", "/__fake/events")).data, 2)
end

function TestFake.test_disconnect_reports_delivery_failure_and_missing_url()
  local env = setup{ http_request = function() return nil, "Failed to connect", "connect" end }
  approve(env, "&account=acct_D2")
  local res = call(env, "POST", "/__fake/accounts/acct_D2/disconnect", { body = "force=true" })
  lu.assertEquals(decode(res).delivery.code, "connect")
  env = setup{ webhook_url = false }
  env.fake.config.webhook_url = nil
  res = call(env, "POST", "/__fake/accounts/acct_D3/disconnect", { query = "force=true" })
  lu.assertEquals(res.status, 200)
  lu.assertStrContains(decode(res).delivery.skipped, "FAKE_WEBHOOK_URL")
end

function TestFake.test_v1_account()
  local env = setup()
  local t = decode(token(env, "grant_type=authorization_code&code=" .. approve(env, "&account=acct_V1")))
  local rows = {
    { "platform + Stripe-Account", { Authorization = basic(SK), ["Stripe-Account"] = "acct_V1" }, 200, "acct_V1" },
    { "access token", { Authorization = "Bearer " .. t.access_token }, 200, "acct_V1" },
    { "platform itself", { Authorization = basic(SK) }, 200, "acct_platform_fake" },
    { "not connected", { Authorization = basic(SK), ["Stripe-Account"] = "acct_other" }, 403 },
    { "no key", {}, 401 },
    { "bad key", { Authorization = "Bearer sk_test_bad" }, 401 },
  }
  for _, row in ipairs(rows) do
    local res = call(env, "GET", "/v1/account", { headers = row[2] })
    lu.assertEquals(res.status, row[3], row[1])
    if row[4] then lu.assertEquals(decode(res).id, row[4], row[1])
    else lu.assertEquals(type(decode(res).error), "table", row[1]) end
  end
  lu.assertEquals(call(env, "GET", "/v1/charges").status, 404)
  lu.assertEquals(call(env, "GET", "/nope").status, 404)
  lu.assertEquals(call(env, "GET", "/oauth/token").status, 405)
end

return { TestFake = TestFake }
