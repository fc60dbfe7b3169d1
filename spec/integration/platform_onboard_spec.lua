-- The platform with ONBOARDING=both and an owner hook (spec/support/owner_policy.lua:
-- the "session" cookie is the signed-in user) against the fake Connect:
-- Account Links create → the fake's onboarding page → Submit → return →
-- connected; Save for later → still onboarding → account.updated webhook →
-- connected; refresh and expired links; another browser or user cannot
-- finish; OAuth flows store their owner and the admin list filters by it; an
-- account Stripe answers 403 for is marked disconnected (source "api").
local lu = require "luaunit"
local cjson = require "cjson.safe"
local http = require "support.http"
local platform = require "support.platform"

local p

local TestPlatformOnboard = {}

function TestPlatformOnboard.setupClass()
  p = platform.start{ env = { ONBOARDING = "both", POLICY = "spec/support/owner_policy.lua" } }
end

function TestPlatformOnboard.teardownClass()
  if p then p:stop() end
end

local function user(name)
  local b = http.browser()
  b.cookies.session = name
  return b
end

-- start(b) -> the Account Link URL POST /onboard redirected to.
local function start(b)
  local res = assert(b:request{ method = "POST", url = p.url .. "/onboard", body = "",
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Email"] = "jenny@example.com",
                Origin = p.url } })
  lu.assertEquals(res.status, 303, res.body)
  local link = res.headers["location"]
  lu.assertStrMatches(link, p.fake.url:gsub("%p", "%%%0") .. "/setup/s/%x+")
  return link
end

-- onboard(link, decision) -> the URL the fake sends the browser to.
local function onboard(link, decision)
  local page = assert(http.get(link))
  lu.assertEquals(page.status, 200, page.body)
  lu.assertStrContains(page.body, "Submit")
  local res = assert(http.post_form(link .. "/submit", { decision = decision or "submit" }))
  lu.assertEquals(res.status, 302)
  return res.headers["location"]
end

local function account(id)
  local status, body = p:admin("GET", "/admin/accounts/" .. id)
  lu.assertEquals(status, 200)
  return body.data
end

local function id_of(url)
  return url:match("account=(acct_%w+)")
end

function TestPlatformOnboard.test_home_offers_both()
  local res = assert(http.get(p.url .. "/"))
  lu.assertStrContains(res.body, 'href="/connect"')
  lu.assertStrContains(res.body, 'action="/onboard"')
  lu.assertStrContains(res.headers["content-security-policy"], "form-action 'self' " .. p.fake.url)
end

function TestPlatformOnboard.test_create_onboard_return_connected()
  local b = user("user_links")
  local link = start(b)
  lu.assertNotNil(b.cookies.sc_bind, "the binding cookie")
  local ret = onboard(link)
  lu.assertStrContains(ret, p.url .. "/onboard/return?t=")
  local res = assert(b:get(ret))
  lu.assertEquals(res.status, 303, res.body)
  local id = id_of(res.headers["location"])
  lu.assertNotNil(id, res.headers["location"])
  local a = account(id)
  lu.assertEquals(a.status, "connected")
  lu.assertEquals(a.owner, "user_links")
  lu.assertTrue(a.details_submitted)
  lu.assertTrue(a.charges_enabled)
  lu.assertEquals(a.onboarding, "account_links")
  lu.assertStrContains(p.platform:log_text(), "policy: connected " .. id .. " owner=user_links")
  -- the account was created with the prefill and is the platform's
  local fake_accounts = cjson.decode(http.get(p.fake.url .. "/__fake/accounts").body).data
  local found = false
  for _, f in ipairs(fake_accounts) do found = found or (f.id == id and f.connected) end
  lu.assertTrue(found)
end

function TestPlatformOnboard.test_save_for_later_then_webhook()
  local b = user("user_later")
  local ret = onboard(start(b), "later")
  local res = assert(b:get(ret))
  lu.assertEquals(res.status, 200)
  lu.assertStrContains(res.body, "not ready yet")
  local id = res.body:match("<code>(acct_%w+)</code>")
  lu.assertEquals(account(id).status, "onboarding")
  -- "Continue setting up" makes a new link for the same account
  local cont = res.body:match('href="(/onboard/refresh%?t=[^"]+)"')
  lu.assertNotNil(cont)
  local again = assert(b:get(p.url .. cont))
  lu.assertEquals(again.status, 303)
  lu.assertStrContains(again.headers["location"], "/setup/s/")
  -- the user finishes elsewhere: account.updated reaches /webhooks
  local done = cjson.decode(assert(http.post_form(p.fake.url .. "/__fake/accounts/" .. id .. "/complete", {})).body)
  lu.assertEquals(done.delivery.status, 200)
  lu.assertEquals(account(id).status, "connected")
  -- a second POST /onboard by a user with an unfinished onboarding continues it
  local b2 = user("user_again")
  local ret2 = onboard(start(b2), "later")
  local first = assert(b2:get(ret2)).body:match("<code>(acct_%w+)</code>")
  lu.assertNotNil(first)
  start(b2)
  local status, list = p:admin("GET", "/admin/accounts?owner=user_again")
  lu.assertEquals(status, 200)
  lu.assertEquals(#list.data, 1, "one account for the user")
  lu.assertEquals(list.data[1].id, first)
end

function TestPlatformOnboard.test_refresh_and_expired_link()
  local b = user("user_refresh")
  local link = start(b)
  -- the link expires (the fake's clock moves past expires_at)
  assert(http.post_form(p.fake.url .. "/__fake/clock", { advance = "301" }))
  local expired = assert(http.get(link))
  lu.assertEquals(expired.status, 302)
  local refresh = expired.headers["location"]
  lu.assertStrContains(refresh, p.url .. "/onboard/refresh?t=")
  local res = assert(b:get(refresh))
  lu.assertEquals(res.status, 303)
  local fresh = res.headers["location"]
  lu.assertNotEquals(fresh, link)
  local ret = onboard(fresh)
  lu.assertEquals(assert(b:get(ret)).status, 303)
  -- a visited link sends the user to refresh_url too
  lu.assertEquals(assert(http.get(fresh)).status, 302)
end

function TestPlatformOnboard.test_another_browser_or_user_cannot_finish()
  local b = user("user_owner")
  local ret = onboard(start(b), "later")
  local other = assert(user("user_owner"):get(ret))
  lu.assertEquals(other.status, 403)
  lu.assertStrContains(other.body, "browser where you started")
  b.cookies.session = "someone_else"
  local wrong = assert(b:get(ret))
  lu.assertEquals(wrong.status, 403)
  lu.assertStrContains(wrong.body, "signed in as the user who started")
  b.cookies.session = "user_owner"
  lu.assertEquals(assert(b:get(ret)).status, 200)
  -- a cross-site form post is refused
  local cross = assert(b:request{ method = "POST", url = p.url .. "/onboard", body = "",
    headers = { Origin = "https://evil.example" } })
  lu.assertEquals(cross.status, 403)
  cross = assert(b:request{ method = "POST", url = p.url .. "/onboard", body = "",
    headers = { Origin = "null", ["Sec-Fetch-Site"] = "cross-site" } })
  lu.assertEquals(cross.status, 403)
end

function TestPlatformOnboard.test_oauth_owner_and_admin_filter()
  local a = user("owner_a")
  local res = p:connect(a, { account = "acct_ownerA1" })
  lu.assertEquals(res.status, 303)
  lu.assertEquals(account("acct_ownerA1").owner, "owner_a")
  lu.assertEquals(p:connect(user("owner_b"), { account = "acct_ownerB1" }).status, 303)
  local status, list = p:admin("GET", "/admin/accounts?owner=owner_a")
  lu.assertEquals(status, 200)
  lu.assertEquals(#list.data, 1)
  lu.assertEquals(list.data[1].id, "acct_ownerA1")
  local _, all = p:admin("GET", "/admin/accounts")
  lu.assertTrue(#all.data >= 2)
  -- the owner changed between /connect and the callback: refused, not spent
  local b = user("owner_c")
  local cb = p:decide(p:begin(b), "approve", "acct_ownerC1")
  b.cookies.session = "owner_d"
  local refused = assert(b:get(cb))
  lu.assertEquals(refused.status, 403)
  lu.assertStrContains(refused.body, "signed in as the user who started")
  b.cookies.session = "owner_c"
  lu.assertEquals(assert(b:get(cb)).status, 303)
  lu.assertEquals(account("acct_ownerC1").owner, "owner_c")
end

function TestPlatformOnboard.test_api_403_marks_disconnected()
  lu.assertEquals(p:connect(user("owner_gone"), { account = "acct_gone1" }).status, 303)
  -- the account is disconnected at Stripe and the webhook is missed
  local res = assert(http.post_form(p.fake.url .. "/oauth/deauthorize",
    { client_id = platform.CLIENT_ID, stripe_user_id = "acct_gone1" },
    { Authorization = "Bearer " .. platform.SECRET_KEY }))
  lu.assertEquals(res.status, 200)
  lu.assertEquals(account("acct_gone1").status, "connected")
  local status, body = p:admin("POST", "/admin/accounts/acct_gone1/sync")
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.status, "disconnected")
  lu.assertEquals(body.data.disconnect_reason, "api")
  lu.assertStrContains(p.platform:log_text(), "policy: deauthorized acct_gone1 (api)")
  lu.assertNotStrContains(p.platform:log_text(), platform.SECRET_KEY)
  local metrics = assert(http.get(p.url .. "/metrics")).body
  lu.assertStrContains(metrics, 'stripe_connect_deauthorizations_total{source="api"} 1')
end

return { TestPlatformOnboard = TestPlatformOnboard }
