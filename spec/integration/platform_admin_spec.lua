-- The admin page and API as an operator uses them, over loopback (real host,
-- fake Connect, SQLite): server-side sessions that sign out and cannot be
-- replayed afterwards, throttled sign-in, ADMIN_TOKEN's strength checked at
-- start-up (finding 9 of issue 13); Disconnect asks first and says what it
-- did, the status filter, the Refresh and Home links, admin API errors in
-- an operator's words, and the styled 404 page (issue 14, item 7).
local lu = require "luaunit"
local core = require "stripe_connect.core"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"
local app = require "stripe_connect.app"

local p

local TestPlatformAdmin = {}

function TestPlatformAdmin.setupClass()
  p = platform.start{}
end

function TestPlatformAdmin.teardownClass()
  if p then p:stop() end
end

local function signed_in()
  local b = http.browser()
  local res = assert(b:post_form(p.url .. "/admin/login", { token = platform.ADMIN_TOKEN }))
  lu.assertEquals(res.status, 303)
  return b
end

local function csrf_of(page)
  return page.body:match('name="csrf" value="([^"]+)"')
end

local function session_key(sid)
  return "admin-session:" .. core.base64url_encode(core.hmac_sha256(platform.ADMIN_TOKEN,
    "stripe-connect admin session\0" .. sid))
end

-- Sign out ends the session on the server: a copy of the cookie taken
-- before signing out is refused afterwards.
function TestPlatformAdmin.test_sign_out_revokes_the_session_on_the_server()
  local b = signed_in()
  local copy = b.cookies.sc_admin
  lu.assertStrMatches(copy, "^[%w_-]+$")
  local page = assert(b:get(p.url .. "/admin"))
  lu.assertEquals(page.status, 200)
  lu.assertStrContains(page.body, 'action="/admin/logout"')
  -- without the form's CSRF field, signing out is refused (and the session lives on)
  lu.assertEquals(assert(b:post_form(p.url .. "/admin/logout", { csrf = "forged" })).status, 403)
  lu.assertEquals(assert(http.get(p.url .. "/admin", { Cookie = "sc_admin=" .. copy })).status, 200)
  local out = assert(b:post_form(p.url .. "/admin/logout", { csrf = csrf_of(page) }))
  lu.assertEquals(out.status, 303)
  lu.assertEquals(out.headers["location"], "/admin?signed_out=1")
  lu.assertStrMatches(out.headers["set-cookie"][1], "sc_admin=; Path=/admin; Max%-Age=0; HttpOnly; SameSite=Strict")
  local login = assert(b:get(p.url .. "/admin?signed_out=1"))
  lu.assertEquals(login.status, 401)
  lu.assertStrContains(login.body, "You are signed out.")
  local replay = assert(http.get(p.url .. "/admin", { Cookie = "sc_admin=" .. copy }))
  lu.assertEquals(replay.status, 401)
  lu.assertStrContains(replay.body, 'action="/admin/login"')
  -- the revoked session's CSRF field does not disconnect anything either
  p:connect(http.browser(), { account = "acct_afterlogout" })
  local res = assert(http.post_form(p.url .. "/admin/accounts/acct_afterlogout/deauthorize",
    { csrf = csrf_of(page) }, { Cookie = "sc_admin=" .. copy }))
  lu.assertEquals(res.status, 401)
  lu.assertEquals(select(2, p:admin("GET", "/admin/accounts/acct_afterlogout")).data.status, "connected")
end

-- The session is a row in the store: the cookie alone (a value the server
-- did not issue, or one whose row expired) signs no one in; rows expire
-- SESSION_TTL after sign-in; the store holds a MAC of the cookie, not it.
function TestPlatformAdmin.test_sessions_are_rows_in_the_store()
  local b = signed_in()
  local sid = b.cookies.sc_admin
  local now = os.time()
  p:with_store(function(s)
    lu.assertNil(s:get_flow("admin-session:" .. sid))
    local f = assert(s:get_flow(session_key(sid)))
    lu.assertTrue(math.abs(f.expires_at - (now + require("stripe_connect.admin").SESSION_TTL)) <= 5, tostring(f.expires_at))
    local live = core.base64url_encode(core.random_bytes(32))
    local expired = core.base64url_encode(core.random_bytes(32))
    assert(s:claim_flow(session_key(live), now + 600))
    assert(s:claim_flow(session_key(expired), now - 1))
    local rows = {
      { "issued by sign-in", sid, 200 },
      { "a row the server holds", live, 200 },
      { "a row past its expiry", expired, 401 },
      { "never issued", core.base64url_encode(core.random_bytes(32)), 401 },
      { "the old issued-at format", now .. "." .. core.base64url_encode(core.hmac_sha256(platform.ADMIN_TOKEN,
        "stripe-connect admin session\0" .. now)), 401 },
      { "garbage", "x.y", 401 },
    }
    for _, row in ipairs(rows) do
      local res = assert(http.get(p.url .. "/admin", { Cookie = "sc_admin=" .. row[2] }))
      lu.assertEquals(res.status, row[3], row[1])
    end
  end)
end

-- Ten failed sign-ins from one address in a window, and the form answers
-- 429 with Retry-After, even to the right token, until the window ends.
function TestPlatformAdmin.test_failed_sign_ins_are_throttled()
  local q = platform.start{}
  local ok, err = pcall(function()
    for i = 1, require("stripe_connect.admin").SIGNIN_FAILURES do
      local res = assert(http.post_form(q.url .. "/admin/login", { token = "wrong-token-" .. i }))
      lu.assertEquals(res.status, 401, "attempt " .. i)
      lu.assertStrContains(res.body, "That token is not right.")
    end
    local res = assert(http.post_form(q.url .. "/admin/login", { token = platform.ADMIN_TOKEN }))
    lu.assertEquals(res.status, 429)
    local wait = tonumber(res.headers["retry-after"])
    lu.assertNotNil(wait)
    lu.assertTrue(wait >= 1 and wait <= require("stripe_connect.admin").SIGNIN_WINDOW, tostring(wait))
    lu.assertStrContains(res.body, "Too many failed sign-ins")
    lu.assertNil(res.headers["set-cookie"])
    -- the Bearer API does not depend on the form's throttle (a 128-bit token)
    lu.assertEquals((q:admin("GET", "/admin/accounts")), 200)
    -- the log says what happened, without the tokens tried
    local log = q.platform:log_text()
    lu.assertStrMatches(log, '.*event=admin_signin_failed request_id=[%w%-]+ failures=10 limit=10 remote_addr=127%.0%.0%.1\n.*')
    lu.assertStrMatches(log, ".*level=warn app=platform event=admin_signin_throttled request_id=.*")
    lu.assertNotStrContains(log, "wrong-token-")
  end)
  q:stop()
  if not ok then error(err, 0) end
end

-- ADMIN_TOKEN below 128 bits refuses to start, with one message naming it.
function TestPlatformAdmin.test_weak_admin_token_refuses_to_start()
  local env = {}
  for k, v in pairs(p.env) do env[k] = v end
  env.ADMIN_TOKEN = "0123456789abcdef"
  local ok, err = pcall(server.start, { app = "scripts/platform.lua", ready_timeout = 5, env = env })
  lu.assertFalse(ok)
  err = tostring(err)
  lu.assertStrContains(err, "ADMIN_TOKEN is too weak (about 64 bits; at least 128 are needed")
  lu.assertNotStrContains(err, "0123456789abcdef")
end

-- Disconnect shows a confirmation page first; confirming disconnects and
-- the list says so; Cancel goes back.
function TestPlatformAdmin.test_disconnect_asks_first_and_says_what_happened()
  p:connect(http.browser(), { account = "acct_confirm1" })
  local b = signed_in()
  local page = assert(b:get(p.url .. "/admin"))
  lu.assertStrContains(page.body, 'href="/admin/accounts/acct_confirm1/disconnect"')
  lu.assertNotStrContains(page.body, 'action="/admin/accounts/acct_confirm1/deauthorize"')
  local confirm = assert(b:get(p.url .. "/admin/accounts/acct_confirm1/disconnect"))
  lu.assertEquals(confirm.status, 200)
  lu.assertStrContains(confirm.body, "Disconnect <code>acct_confirm1</code>?")
  lu.assertStrContains(confirm.body, 'action="/admin/accounts/acct_confirm1/deauthorize"')
  lu.assertStrContains(confirm.body, 'href="/admin">Cancel</a>')
  -- looking at the confirmation page changed nothing
  lu.assertEquals(select(2, p:admin("GET", "/admin/accounts/acct_confirm1")).data.status, "connected")
  local res = assert(b:post_form(p.url .. "/admin/accounts/acct_confirm1/deauthorize", { csrf = csrf_of(confirm) }))
  lu.assertEquals(res.status, 303)
  lu.assertEquals(res.headers["location"], "/admin?done=disconnected&account=acct_confirm1")
  local after = assert(b:get(p.url .. res.headers["location"]))
  lu.assertStrContains(after.body, "acct_confirm1 was disconnected: Stripe revoked the platform")
  lu.assertEquals(select(2, p:admin("GET", "/admin/accounts/acct_confirm1")).data.status, "disconnected")
  -- without a session the confirmation page sends the browser to sign in
  local anon = assert(http.get(p.url .. "/admin/accounts/acct_confirm1/disconnect"))
  lu.assertEquals(anon.status, 303)
  lu.assertEquals(anon.headers["location"], "/admin")
  -- an unknown account: an admin page saying so, with the way back
  local none = assert(b:get(p.url .. "/admin/accounts/acct_nosuchone/disconnect"))
  lu.assertEquals(none.status, 404)
  lu.assertStrContains(none.body, "There is no account acct_nosuchone in the store.")
  lu.assertStrContains(none.body, 'href="/admin"')
end

-- The filter shows connected or disconnected accounts only; the page links
-- home and to itself (Refresh, keeping the filter).
function TestPlatformAdmin.test_filter_refresh_and_home()
  p:connect(http.browser(), { account = "acct_filteron" })
  p:connect(http.browser(), { account = "acct_filteroff" })
  lu.assertEquals((p:admin("POST", "/admin/accounts/acct_filteroff/deauthorize")), 200)
  local b = signed_in()
  local rows = {
    { "all", "/admin", { acct_filteron = true, acct_filteroff = true } },
    { "connected", "/admin?status=connected", { acct_filteron = true, acct_filteroff = false } },
    { "disconnected", "/admin?status=disconnected", { acct_filteron = false, acct_filteroff = true } },
  }
  for _, row in ipairs(rows) do
    local page = assert(b:get(p.url .. row[2]))
    lu.assertEquals(page.status, 200, row[1])
    for id, shown in pairs(row[3]) do
      lu.assertEquals(page.body:find("<code>" .. id .. "</code>", 1, true) ~= nil, shown, row[1] .. " " .. id)
    end
    lu.assertStrContains(page.body, '<a href="/">Home</a>', false, row[1])
    lu.assertStrContains(page.body, '<a href="' .. row[2] .. '">Refresh</a>', false, row[1])
  end
  local connected = assert(b:get(p.url .. "/admin?status=connected")).body
  lu.assertStrContains(connected, '<a href="/admin?status=connected" aria-current="page">Connected</a>')
  -- the JSON API filters the same way, and names a bad filter
  local status, body = p:admin("GET", "/admin/accounts?status=disconnected")
  lu.assertEquals(status, 200)
  for _, a in ipairs(body.data) do lu.assertEquals(a.status, "disconnected") end
  status, body = p:admin("GET", "/admin/accounts?status=gone")
  lu.assertEquals(status, 400)
  lu.assertEquals(body.error.message, "status must be connected, disconnected or onboarding")
end

-- The admin API's errors speak to the operator: what Stripe answered, or
-- which setting to look at; never the end user's "Please try again" text.
function TestPlatformAdmin.test_admin_api_errors_in_operator_words()
  p:connect(http.browser(), { account = "acct_operr" })
  local rows = {
    { "unknown account", nil, "POST", "/admin/accounts/acct_nosuch/deauthorize", 404,
      "no account acct_nosuch in the store" },
    { "Stripe 500", { path = "/oauth/deauthorize", status = 500, count = 3 }, "POST", "/admin/accounts/acct_operr/deauthorize",
      502, "Stripe answered the deauthorize call with an error (HTTP 500); try again" },
    { "refresh 500", { path = "/oauth/token", status = 500, count = 3 }, "POST", "/admin/accounts/acct_operr/refresh",
      502, "Stripe answered the token refresh with an error (HTTP 500); try again" },
    { "no token", nil, "GET", "/admin/accounts", 401, "Authorization: Bearer <ADMIN_TOKEN>" },
  }
  for _, row in ipairs(rows) do
    if row[2] then p:fault(row[2]) end -- as many 500s as the client tries
    local token = nil
    if row[1] == "no token" then token = false end
    local status, body = p:admin(row[3], row[4], token)
    assert(http.request{ method = "DELETE", url = p.fake.url .. "/__fake/faults" })
    lu.assertEquals(status, row[5], row[1])
    lu.assertStrContains(body.error.message, row[6], false, row[1])
    lu.assertNotStrContains(body.error.message, "Please", false, row[1])
  end
  -- after the faults the account is still connected, and the page says why a Disconnect failed
  lu.assertEquals(select(2, p:admin("GET", "/admin/accounts/acct_operr")).data.status, "connected")
  p:fault{ path = "/oauth/deauthorize", status = 500, count = 3 }
  local b = signed_in()
  local confirm = assert(b:get(p.url .. "/admin/accounts/acct_operr/disconnect"))
  local res = assert(b:post_form(p.url .. "/admin/accounts/acct_operr/deauthorize", { csrf = csrf_of(confirm) }))
  lu.assertEquals(res.status, 502)
  lu.assertStrContains(res.body, "Could not disconnect acct_operr")
  lu.assertStrContains(res.body, "Stripe answered the deauthorize call with an error (HTTP 500)")
  lu.assertStrContains(res.body, 'href="/admin"')
  assert(http.request{ method = "DELETE", url = p.fake.url .. "/__fake/faults" })
end

-- A path no route serves answers the styled 404 page, with the pages'
-- security headers; a known path with the wrong method is still 405.
function TestPlatformAdmin.test_unknown_paths_get_the_styled_404()
  for _, path in ipairs({ "/nope", "/admin/nope", "/connect/extra" }) do
    local res = assert(http.get(p.url .. path))
    lu.assertEquals(res.status, 404, path)
    lu.assertStrContains(res.headers["content-type"], "text/html", false, path)
    lu.assertStrContains(res.body, "<h1>Page not found</h1>", false, path)
    lu.assertStrContains(res.body, 'href="/"', false, path)
    lu.assertStrContains(res.headers["content-security-policy"], "default-src 'none'", false, path)
    lu.assertEquals(res.headers["x-frame-options"], "DENY", path)
  end
  local res = assert(http.request{ method = "DELETE", url = p.url .. "/connect" })
  lu.assertEquals(res.status, 405)
  lu.assertStrContains(res.headers["allow"], "GET")
end

return { TestPlatformAdmin = TestPlatformAdmin }
