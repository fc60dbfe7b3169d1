-- The platform app over loopback: real host (`stripe-connect serve
-- scripts/platform.lua`), real fake Connect, real SQLite, a cookie-keeping
-- browser per user.  Rows of issue 5 "Done when": approve, deny, state
-- problems, two tabs, replay, concurrent twins, invalid_grant, Stripe down /
-- 500 / slow, admin auth, deauthorize and refresh (admin API and scripts).
local lu = require "luaunit"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"

-- "host", or "nginx" when spec/integration/openresty_spec.lua loads this file
-- with that argument: the same cases against scripts/openresty/serve.
local target = ... or "host"

local p -- one platform + fake for the class

local TestPlatformFlow = {}

function TestPlatformFlow.setupClass()
  p = platform.start{ workers = 2, target = target }
end

function TestPlatformFlow.teardownClass()
  if p then p:stop() end
end

local function assert_no_store(res, name)
  lu.assertEquals(res.headers["cache-control"], "no-store", name)
  lu.assertEquals(res.headers["referrer-policy"], "no-referrer", name)
end

local function assert_clean_page(res, name)
  lu.assertStrContains(res.headers["content-type"], "text/html", false, name)
  for _, secret in ipairs({ platform.SECRET_KEY, "ac_", "sk_test", "rt_", "traceback", "stack" }) do
    lu.assertNotStrContains(res.body, secret, false, name)
  end
end

function TestPlatformFlow.test_home_and_health()
  local res = assert(http.get(p.url .. "/"))
  lu.assertEquals(res.status, 200)
  lu.assertStrContains(res.body, 'href="/connect"')
  lu.assertStrContains(res.body, "Connect with Stripe")
  lu.assertNotStrContains(res.body, "<script")
  lu.assertNotStrContains(res.body, "https://")
  lu.assertEquals(assert(http.get(p.url .. "/healthz")).status, 200)
end

function TestPlatformFlow.test_approve()
  local b = http.browser()
  local auth = p:begin(b, "/connect?return_to=/dashboard")
  lu.assertStrContains(auth.url, p.fake.url .. "/oauth/authorize?")
  lu.assertEquals(auth.args.client_id, platform.CLIENT_ID)
  lu.assertEquals(auth.args.response_type, "code")
  lu.assertEquals(auth.args.scope, "read_write")
  lu.assertEquals(auth.args.redirect_uri, p.url .. "/oauth/callback")
  local set_cookie = table.concat(auth.res.headers["set-cookie"], "\n")
  lu.assertStrContains(set_cookie, "sc_bind=")
  lu.assertStrContains(set_cookie, "HttpOnly")
  lu.assertStrContains(set_cookie, "SameSite=Lax")
  local before = p:token_calls()
  local res = assert(b:get(p:decide(auth, "approve", "acct_approve1")))
  lu.assertEquals(res.status, 303)
  lu.assertEquals(res.headers["location"], "/dashboard")
  assert_no_store(res)
  lu.assertEquals(p:token_calls(), before + 1)
  local status, body = p:admin("GET", "/admin/accounts/acct_approve1")
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.status, "connected")
  lu.assertEquals(body.data.scope, "read_write")
  lu.assertEquals(body.data.livemode, false)
  lu.assertTrue(body.data.has_refresh_token)
  lu.assertNil(body.data.refresh_token)
  lu.assertNil(body.data.access_token)
  -- the default landing page
  local b2 = http.browser()
  local res2 = p:connect(b2, { account = "acct_approve2" })
  lu.assertEquals(res2.headers["location"], "/connected?account=acct_approve2")
  local page = assert(b2:get(p.url .. res2.headers["location"])) -- the browser that connected (finding 6)
  lu.assertEquals(page.status, 200)
  lu.assertStrContains(page.body, "acct_approve2")
end

function TestPlatformFlow.test_deny()
  local b = http.browser()
  local before = p:token_calls()
  local res = p:connect(b, { decision = "deny" })
  lu.assertEquals(res.status, 200)
  lu.assertStrContains(res.body, "You declined to connect")
  lu.assertStrContains(res.body, 'href="/connect"')
  assert_no_store(res)
  assert_clean_page(res)
  lu.assertEquals(p:token_calls(), before)
end

function TestPlatformFlow.test_state_problems_are_403()
  local b = http.browser()
  local auth = p:begin(b)
  local cb = p:decide(auth, "approve")
  local state = platform.parse_query(cb).state
  local code = platform.parse_query(cb).code
  local base = p.url .. "/oauth/callback?code=" .. code .. "&state="
  local tampered = state:sub(1, -2) .. (state:sub(-1) == "A" and "B" or "A")
  local before = p:token_calls()
  local rows = {
    { "missing state", b, p.url .. "/oauth/callback?code=" .. code, "not valid" },
    { "tampered state", b, base .. tampered, "not valid" },
    { "garbage state", b, base .. "v1.zz", "not valid" },
    { "other browser", http.browser(), cb, "browser where you started" },
  }
  for _, row in ipairs(rows) do
    local res = assert(row[2]:get(row[3]))
    lu.assertEquals(res.status, 403, row[1])
    lu.assertStrContains(res.body, row[4], false, row[1])
    lu.assertStrContains(res.body, 'href="/connect"', false, row[1])
    assert_no_store(res, row[1])
    assert_clean_page(res, row[1])
  end
  lu.assertEquals(p:token_calls(), before)
  -- none of them consumed the state: the right browser still completes
  lu.assertEquals(assert(b:get(cb)).status, 303)
end

function TestPlatformFlow.test_two_tabs_one_cookie()
  local b = http.browser()
  local tab1 = p:begin(b)
  local tab2 = p:begin(b)
  lu.assertNotEquals(tab1.args.state, tab2.args.state)
  local n = 0
  for _ in pairs(b.cookies) do n = n + 1 end
  lu.assertEquals(n, 1, "one binding cookie for both tabs")
  local cb1 = p:decide(tab1, "approve", "acct_tab1")
  local cb2 = p:decide(tab2, "approve", "acct_tab2")
  lu.assertEquals(assert(b:get(cb2)).status, 303)
  lu.assertEquals(assert(b:get(cb1)).status, 303)
  lu.assertEquals((p:admin("GET", "/admin/accounts/acct_tab1")), 200)
  lu.assertEquals((p:admin("GET", "/admin/accounts/acct_tab2")), 200)
end

function TestPlatformFlow.test_replayed_callback_gets_first_outcome()
  local b = http.browser()
  local before = p:token_calls()
  local first, cb = p:connect(b, { account = "acct_replay" })
  lu.assertEquals(first.status, 303)
  for i = 1, 3 do
    local again = assert(b:get(cb))
    lu.assertEquals(again.status, 303, "replay " .. i)
    lu.assertEquals(again.headers["location"], first.headers["location"], "replay " .. i)
    assert_no_store(again)
  end
  lu.assertEquals(p:token_calls(), before + 1)
  -- a replayed failure answers the same failure
  local b2 = http.browser()
  local denied, dcb = p:connect(b2, { decision = "deny" })
  local again = assert(b2:get(dcb))
  lu.assertEquals(again.status, denied.status)
  lu.assertStrContains(again.body, "You declined")
end

-- Two identical callbacks at the same moment (background curl processes with
-- the same cookie); the fake holds the token call for a moment so the second
-- arrives while the first is in flight.
function TestPlatformFlow.test_concurrent_identical_callbacks_one_token_call()
  local b = http.browser()
  local cb = p:decide(p:begin(b), "approve", "acct_twins")
  p:fault{ path = "/oauth/token", delay = 1 }
  local before = p:token_calls()
  local outs = {}
  for i = 1, 2 do
    outs[i] = os.tmpname()
    os.execute(string.format("curl -s -o /dev/null -w '%%{http_code} %%{redirect_url}' -H 'Cookie: %s' '%s' > %s.tmp 2>&1 && mv %s.tmp %s &",
      b:cookie_header(), cb, outs[i], outs[i], outs[i]))
  end
  local results = {}
  for i = 1, 2 do
    results[i] = server.poll(function()
      local f = io.open(outs[i], "rb")
      local s = f and f:read("a")
      if f then f:close() end
      return s and s ~= "" and s or nil
    end, 20)
    os.remove(outs[i])
  end
  lu.assertStrContains(results[1], "303 ")
  lu.assertEquals(results[1], results[2])
  lu.assertStrContains(results[1], "/connected?account=acct_twins")
  lu.assertEquals(p:token_calls(), before + 1)
end

function TestPlatformFlow.test_invalid_grant_is_400()
  local b = http.browser()
  local auth = p:begin(b)
  local before = p:token_calls()
  local res = assert(b:get(p.url .. "/oauth/callback?scope=read_write&code=ac_doesnotexist&state=" ..
    require("stripe_connect.core").url_encode(auth.args.state)))
  lu.assertEquals(res.status, 400)
  lu.assertStrContains(res.body, "already used or has expired")
  assert_clean_page(res)
  assert_no_store(res)
  lu.assertEquals(p:token_calls(), before + 1)
  -- missing code
  local b2 = http.browser()
  local auth2 = p:begin(b2)
  local res2 = assert(b2:get(p.url .. "/oauth/callback?state=" .. require("stripe_connect.core").url_encode(auth2.args.state)))
  lu.assertEquals(res2.status, 400)
end

function TestPlatformFlow.test_stripe_500_and_slow()
  local rows = {
    { "500", { path = "/oauth/token", status = 500 }, 502, "Stripe had a problem" },
    { "slow", { path = "/oauth/token", delay = 8 }, 504, "did not answer in time" },
  }
  for _, row in ipairs(rows) do
    local b = http.browser()
    local cb = p:decide(p:begin(b), "approve")
    p:fault(row[2])
    local res = assert(b:get(cb))
    lu.assertEquals(res.status, row[3], row[1])
    lu.assertStrContains(res.body, row[4], false, row[1])
    assert_clean_page(res, row[1])
    assert_no_store(res, row[1])
  end
end

function TestPlatformFlow.test_admin_auth()
  local rows = {
    { "no token", false, 401 }, { "wrong token", "wrong-token-wrong-token", 401 },
    { "right token", nil, 200 },
  }
  for _, row in ipairs(rows) do
    local status, body, res = p:admin("GET", "/admin/accounts", row[2])
    lu.assertEquals(status, row[3], row[1])
    if status == 200 then lu.assertIsTable(body.data, row[1]) end
    if status == 401 then lu.assertStrContains(res.headers["www-authenticate"], "Bearer", false, row[1]) end
  end
  lu.assertEquals((p:admin("POST", "/admin/accounts/acct_x/deauthorize", "wrong-token-wrong-token")), 401)
  lu.assertEquals((p:admin("GET", "/admin/accounts/acct_nosuch")), 404)
  -- the HTML page: a login form, then the list with Disconnect buttons
  local b = http.browser()
  lu.assertEquals(assert(b:get(p.url .. "/admin")).status, 401)
  lu.assertEquals(assert(b:post_form(p.url .. "/admin/login", { token = "nope" })).status, 401)
  local login = assert(b:post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN }))
  lu.assertEquals(login.status, 303)
  local page = assert(b:get(p.url .. "/admin"))
  lu.assertEquals(page.status, 200)
  lu.assertStrContains(page.body, "Connected accounts")
end

function TestPlatformFlow.test_admin_deauthorize_and_refresh()
  p:connect(http.browser(), { account = "acct_admin1" })
  local status, body = p:admin("POST", "/admin/accounts/acct_admin1/refresh")
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.status, "connected")
  lu.assertIsNumber(body.data.refreshed_at)
  status, body = p:admin("POST", "/admin/accounts/acct_admin1/deauthorize")
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.status, "disconnected")
  lu.assertFalse(body.data.has_refresh_token)
  local found
  for _, r in ipairs(p:fake_requests()) do
    if r.path == "/oauth/deauthorize" and r.stripe_user_id == "acct_admin1" then found = r end
  end
  lu.assertNotNil(found)
  lu.assertEquals(found.status, 200)
  status = p:admin("POST", "/admin/accounts/acct_admin1/refresh")
  lu.assertEquals(status, 409)
  -- the HTML Disconnect button (session cookie + CSRF field)
  p:connect(http.browser(), { account = "acct_admin2" })
  local b = http.browser()
  b:post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN })
  local page = assert(b:get(p.url .. "/admin/accounts/acct_admin2/disconnect"))
  local csrf = page.body:match('name="csrf" value="([^"]+)"')
  lu.assertNotNil(csrf)
  lu.assertEquals(assert(b:post_form(p.url .. "/admin/accounts/acct_admin2/deauthorize", { csrf = "bad" })).status, 403)
  local res = assert(b:post_form(p.url .. "/admin/accounts/acct_admin2/deauthorize", { csrf = csrf }))
  lu.assertEquals(res.status, 303)
  lu.assertEquals(select(2, p:admin("GET", "/admin/accounts/acct_admin2")).data.status, "disconnected")
end

function TestPlatformFlow.test_scripts()
  p:connect(http.browser(), { account = "acct_script1" })
  local rc, out = p:script("accounts", "--json")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"id":"acct_script1"')
  lu.assertNotStrContains(out, "rt_")
  rc, out = p:script("accounts")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "acct_script1")
  rc, out = p:script("refresh", "acct_script1")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "acct_script1 refreshed read_write test")
  rc, out = p:script("deauthorize", "acct_script1")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "acct_script1 disconnected")
  lu.assertEquals(select(2, p:admin("GET", "/admin/accounts/acct_script1")).data.status, "disconnected")
  rc, out = p:script("refresh", "acct_script1")
  lu.assertEquals(rc, 1, out)
  rc = p:script("deauthorize", "")
  lu.assertEquals(rc, 2)
end

function TestPlatformFlow.test_metrics()
  local res = assert(http.get(p.url .. "/metrics"))
  lu.assertEquals(res.status, 200)
  lu.assertStrContains(res.headers["content-type"], "text/plain")
  lu.assertStrContains(res.body, "# TYPE stripe_connect_callbacks_total counter")
  lu.assertStrContains(res.body, 'stripe_connect_accounts{status="connected"}')
end

if target == "nginx" then return { TestPlatformFlowNginx = TestPlatformFlow } end
return { TestPlatformFlow = TestPlatformFlow }
