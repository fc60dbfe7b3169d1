-- The platform against hostile input, over loopback (real host, fake
-- Connect, SQLite): open redirects through return_to, header injection,
-- HTML injection through every reflected or stored value, quotes in every
-- stored field through the admin API and the scripts, cookie attributes for
-- http and https PUBLIC_URLs, the pages' security headers, the admin
-- sign-in's server-side expiry and CSRF, and the serve log carrying no
-- secret, code or token.  Each test is named after what it guards against.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local http = require "support.http"
local platform = require "support.platform"
local store_mod = require "stripe_connect.store"

local p

local TestPlatformSecurity = {}

function TestPlatformSecurity.setupClass()
  p = platform.start{}
end

function TestPlatformSecurity.teardownClass()
  if p then p:stop() end
end

local enc = core.url_encode

-- A store on the platform's own SQLite file (WAL: both see each other's commits).
local function with_store(fn)
  local s = assert(store_mod.open(p.env.DATABASE))
  local ok, err = pcall(fn, s)
  s:close()
  if not ok then error(err, 0) end
end

function TestPlatformSecurity.test_return_to_open_redirects_never_leave_the_site()
  -- { name, the query string's return_to part (already encoded as sent) }
  local rows = {
    { "scheme-relative", enc("//evil.com") },
    { "backslash", enc("/\\evil.com") },
    { "absolute", enc("https://evil.com") },
    { "encoded slashes", enc("/%2F%2Fevil.com") },
    { "encoded slashes, raw", "/%2F%2Fevil.com" },
    { "encoded backslash", enc("/%5Cevil.com") },
    { "encoded backslash lower", enc("/%5cevil.com") },
    { "raw backslash", "/%5Cevil.com" },
    { "javascript", enc("javascript:alert(1)") },
    { "tab then slashes", enc("/\t/evil.com") },
    { "dot then slashes", enc("/.//evil.com") },
    { "CR LF header injection", "/a%0D%0ASet-Cookie:%20pwned=1" },
    { "LF header injection", "/a%0ALocation:%20https://evil.com" },
    { "repeated, one hostile", "/ok&return_to=//evil.com" },
  }
  for _, row in ipairs(rows) do
    local b = http.browser()
    local res = p:connect(b, { path = "/connect?return_to=" .. row[2] })
    local loc = res.headers["location"] or ""
    lu.assertEquals(res.status, 303, row[1])
    lu.assertStrMatches(loc, "/connected%?account=acct_[%w_]+", nil, nil, row[1] .. ": " .. loc)
    lu.assertNil(b.cookies.pwned, row[1])
    lu.assertNil(res.headers["set-cookie"], row[1])
  end
  -- a good local path is kept, with its query
  local res = p:connect(http.browser(), { path = "/connect?return_to=" .. enc("/dashboard?tab=stripe") })
  lu.assertEquals(res.headers["location"], "/dashboard?tab=stripe")
end

function TestPlatformSecurity.test_reflected_and_stored_values_are_html_escaped()
  local script = "<script>alert(1)</script>"
  local function assert_escaped(res, name)
    lu.assertNotStrContains(res.body, "<script", false, name)
    lu.assertNotStrContains(res.body, "alert(1)</", false, name)
  end
  -- error_description and error, with and without a valid state
  local b = http.browser()
  local auth = p:begin(b)
  local res = assert(b:get(p.url .. "/oauth/callback?error=access_denied&error_description=" .. enc(script) ..
    "&state=" .. enc(auth.args.state)))
  lu.assertEquals(res.status, 200)
  assert_escaped(res, "error_description")
  res = assert(b:get(p.url .. "/oauth/callback?error=" .. enc(script) .. "&error_description=" .. enc(script)))
  lu.assertEquals(res.status, 400)
  assert_escaped(res, "error without state")
  res = assert(b:get(p.url .. "/oauth/callback?state=" .. enc(script) .. "&code=" .. enc(script)))
  lu.assertEquals(res.status, 403)
  assert_escaped(res, "state and code")
  -- return_to reflected nowhere; the account id on /connected and /admin
  local hostile = { id = "acct_x\"><script>alert(1)</script>", status = "connected",
    scope = "read_write<script>alert(1)</script>", connected_at = os.time() }
  with_store(function(s) assert(s:put_account(hostile)) end)
  -- /connected refuses an id that is not acct_ and letters/digits (finding 6) and echoes none of it
  res = assert(http.get(p.url .. "/connected?account=" .. enc(hostile.id)))
  lu.assertEquals(res.status, 400)
  assert_escaped(res, "/connected")
  lu.assertNotStrContains(res.body, "acct_x")
  local admin = http.browser()
  admin:post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN })
  res = assert(admin:get(p.url .. "/admin"))
  lu.assertEquals(res.status, 200)
  assert_escaped(res, "/admin")
  lu.assertStrContains(res.body, "read_write&lt;script&gt;")
  with_store(function(s) s:delete_account(hostile.id) end)
end

-- Quotes, backslashes and SQL in every stored field go in and come out as
-- data through the admin API, the scripts, deauthorize and refresh.
function TestPlatformSecurity.test_quotes_in_every_stored_field_are_data()
  local q = "it's \"q\" \\ '); DROP TABLE accounts; --"
  local a = { id = "acct_quotes", status = "connected", scope = "read_write" .. q, livemode = false,
    token_type = "bearer" .. q, access_token = "sk_test_" .. q, refresh_token = "rt_" .. q,
    stripe_publishable_key = "pk_test_" .. q, connected_at = os.time(), disconnect_reason = q, note = q }
  with_store(function(s) assert(s:put_account(a)) end)
  local status, body = p:admin("GET", "/admin/accounts/acct_quotes")
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.scope, a.scope)
  local rc, out = p:script("accounts", "--json")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"id":"acct_quotes"')
  lu.assertNotStrContains(out, "rt_it")
  -- refresh: the fake does not know this refresh token (invalid_grant → 400),
  -- and the row is untouched
  status, body = p:admin("POST", "/admin/accounts/acct_quotes/refresh")
  lu.assertEquals(status, 400, body)
  with_store(function(s) lu.assertEquals(s:get_account("acct_quotes").refresh_token, a.refresh_token) end)
  -- deauthorize: the fake answers invalid_client (not connected there), which
  -- marks it disconnected here; the quoted reason column is overwritten
  rc, out = p:script("deauthorize", "acct_quotes")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "acct_quotes disconnected")
  with_store(function(s)
    local got = s:get_account("acct_quotes")
    lu.assertEquals(got.status, "disconnected")
    lu.assertEquals(got.disconnect_reason, "script")
    lu.assertEquals(got.note, q)
    lu.assertNil(got.refresh_token)
    lu.assertTrue(#s:list_accounts() >= 1, "the accounts table is still there")
  end)
end

local function assert_page_headers(res, name)
  local csp = res.headers["content-security-policy"] or ""
  lu.assertStrContains(csp, "default-src 'none'", false, name)
  lu.assertStrContains(csp, "frame-ancestors 'none'", false, name)
  lu.assertStrContains(csp, "form-action 'self'", false, name)
  lu.assertEquals(res.headers["x-frame-options"], "DENY", name)
  lu.assertEquals(res.headers["x-content-type-options"], "nosniff", name)
end

-- Pages could be framed (clickjacking the admin's Disconnect buttons) and
-- carried no CSP.
function TestPlatformSecurity.test_every_page_has_csp_and_no_framing()
  local b = http.browser()
  local deny = p:connect(b, { decision = "deny" })
  local admin = http.browser()
  local rows = {
    { "home", assert(http.get(p.url .. "/")) },
    { "connected", assert(http.get(p.url .. "/connected")) },
    { "declined", deny },
    { "403 state", assert(http.get(p.url .. "/oauth/callback?code=x&state=y")) },
    { "admin login", assert(admin:get(p.url .. "/admin")) },
    { "admin list", (function()
        admin:post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN })
        return assert(admin:get(p.url .. "/admin"))
      end)() },
  }
  for _, row in ipairs(rows) do
    lu.assertStrContains(row[2].headers["content-type"], "text/html", false, row[1])
    assert_page_headers(row[2], row[1])
  end
end

function TestPlatformSecurity.test_http_public_url_cookie_attributes()
  local auth = p:begin(http.browser())
  local c = auth.res.headers["set-cookie"][1]
  lu.assertStrMatches(c, "sc_bind=[%w_-]+; Path=/; Max%-Age=%d+; HttpOnly; SameSite=Lax")
  local login = assert(http.browser():post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN }))
  lu.assertStrMatches(login.headers["set-cookie"][1], "sc_admin=[%w_.-]+; Path=/admin; Max%-Age=%d+; HttpOnly; SameSite=Strict")
end

-- With an https PUBLIC_URL the binding cookie is __Host-sc_bind with Secure,
-- and only that cookie binds the state.
function TestPlatformSecurity.test_https_public_url_cookie_is_host_prefixed_and_secure()
  local hp = platform.start{ env = { PUBLIC_URL = "https://platform.example" } }
  local ok, err = pcall(function()
    local b = http.browser()
    local auth = hp:begin(b)
    lu.assertEquals(auth.args.redirect_uri, "https://platform.example/oauth/callback")
    local c = auth.res.headers["set-cookie"][1]
    lu.assertStrMatches(c, "__Host%-sc_bind=[%w_-]+; Path=/; Max%-Age=%d+; HttpOnly; SameSite=Lax; Secure")
    local value = b.cookies["__Host-sc_bind"]
    lu.assertNotNil(value)
    local cb = hp.url .. "/oauth/callback?state=" .. enc(auth.args.state) -- no code: 400 once the state verifies
    local rows = {
      { "the __Host- cookie", "__Host-sc_bind=" .. value, 400 },
      { "the same value without the prefix", "sc_bind=" .. value, 403 },
      { "no cookie", nil, 403 },
    }
    for _, row in ipairs(rows) do
      local res = assert(http.get(cb, { Cookie = row[2] }))
      lu.assertEquals(res.status, row[3], row[1])
    end
    local login = assert(http.browser():post_form(hp.url .. "/admin/login", { token = platform.ADMIN_TOKEN }))
    lu.assertStrMatches(login.headers["set-cookie"][1],
      "__Secure%-sc_admin=[%w_.-]+; Path=/admin; Max%-Age=%d+; HttpOnly; SameSite=Strict; Secure")
  end)
  hp:stop()
  if not ok then error(err, 0) end
end

-- The admin sign-in cookie was one fixed value per token: a copy of it
-- worked forever.  Now it is a random id of a session the server holds
-- (rows expire after SESSION_TTL, spec/integration/platform_admin_spec.lua);
-- values the server did not issue sign no one in, and the CSRF field
-- belongs to one sign-in.
function TestPlatformSecurity.test_admin_session_expires_and_csrf_is_per_session()
  local function mac_session(iat)
    local mac = core.base64url_encode(core.hmac_sha256(platform.ADMIN_TOKEN, "stripe-connect admin session\0" .. iat))
    return "sc_admin=" .. iat .. "." .. mac
  end
  local now = os.time()
  local fresh = http.browser()
  assert(fresh:post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN }))
  local rows = {
    { "fresh", "sc_admin=" .. fresh.cookies.sc_admin, 200 },
    { "a made-up id", "sc_admin=" .. core.base64url_encode(core.random_bytes(32)), 401 },
    { "the MAC'd issue time of before", mac_session(now), 401 },
    { "the old fixed value", "sc_admin=" .. core.base64url_encode(core.hmac_sha256(platform.ADMIN_TOKEN,
      "stripe-connect admin session")), 401 },
    { "garbage", "sc_admin=x.y", 401 },
  }
  for _, row in ipairs(rows) do
    local res = assert(http.get(p.url .. "/admin", { Cookie = row[2] }))
    lu.assertEquals(res.status, row[3], row[1])
  end
  -- the CSRF field of one sign-in does not work with another
  p:connect(http.browser(), { account = "acct_csrf1" })
  local a1, a2 = http.browser(), http.browser()
  a1:post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN })
  a2:post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN })
  local csrf1 = assert(a1:get(p.url .. "/admin/accounts/acct_csrf1/disconnect")).body:match('name="csrf" value="([^"]+)"')
  lu.assertNotNil(csrf1)
  local res = assert(a2:post_form(p.url .. "/admin/accounts/acct_csrf1/deauthorize", { csrf = csrf1 }))
  lu.assertEquals(res.status, 403)
  -- a Bearer-only view of /admin shows no Disconnect or Sign out form (it has no session)
  local _, _, page = p:admin("GET", "/admin")
  lu.assertEquals(page.status, 200)
  lu.assertNotStrContains(page.body, 'name="csrf"')
  lu.assertNotStrContains(page.body, "/disconnect")
  res = assert(a1:post_form(p.url .. "/admin/accounts/acct_csrf1/deauthorize", { csrf = csrf1 }))
  lu.assertEquals(res.status, 303)
end

-- Codes, tokens, the secret key, state secrets and state tokens never reach
-- the platform's log, whatever the outcome.
function TestPlatformSecurity.test_the_log_carries_no_secret_code_or_token()
  local codes = {}
  local ok_res, cb = p:connect(http.browser(), { account = "acct_logcheck" })
  lu.assertEquals(ok_res.status, 303)
  codes[#codes + 1] = platform.parse_query(cb).code
  -- invalid_grant (Stripe's description quotes the code), 500, denied
  local b = http.browser()
  local auth = p:begin(b)
  assert(b:get(p.url .. "/oauth/callback?code=ac_spentcodespentcode&state=" .. enc(auth.args.state)))
  codes[#codes + 1] = "ac_spentcodespentcode"
  local b2 = http.browser()
  local cb2 = p:decide(p:begin(b2), "approve")
  codes[#codes + 1] = platform.parse_query(cb2).code
  p:fault{ path = "/oauth/token", status = 500 }
  lu.assertEquals(assert(b2:get(cb2)).status, 502)
  p:admin("POST", "/admin/accounts/acct_logcheck/refresh")
  local log = p.platform:log_text()
  lu.assertStrContains(log, "/oauth/callback", false, "the access log is there")
  local never = { platform.SECRET_KEY, platform.ADMIN_TOKEN, platform.WEBHOOK_SECRET, platform.STATE_SECRETS:sub(4),
    "v1.k1.", "rt_", "sk_test_", "pk_test_", "code=" }
  for _, c in ipairs(codes) do never[#never + 1] = c end
  for _, s in ipairs(never) do lu.assertNotStrContains(log, s, false, "log contains " .. s) end
end

return { TestPlatformSecurity = TestPlatformSecurity }
