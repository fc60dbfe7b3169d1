-- The platform's pages in a real browser: Debian's chromium, headless, driven
-- by playwright-core (spec/support/browser_flow.js) against the platform and
-- the fake Connect on loopback.  Approve lands on the success page with the
-- account id; Deny lands on the declined page with a try-again link; two
-- tabs of one browser both complete; Account Links (ONBOARDING=both) runs
-- from the home page's form through the fake's onboarding page back to the
-- success page.  Screenshots of the landing, success
-- and declined pages go to $BROWSER_SHOTS (default /tmp/stripe-connect-shots).
--
-- Skipped only when node/npm is absent.  A missing /usr/bin/chromium is a
-- failure: `make deps` installs it (APT_PACKAGES).
local lu = require "luaunit"
local cjson = require "cjson.safe"
local platform = require "support.platform"
local stripe_node = require "support.stripe_node"

local CHROMIUM = os.getenv("CHROMIUM") or "/usr/bin/chromium"
local SHOTS = os.getenv("BROWSER_SHOTS") or "/tmp/stripe-connect-shots"

local p

local TestPlatformBrowser = {}

local function node_ready()
  return stripe_node.ensure{ "playwright-core" }
end

function TestPlatformBrowser.setupClass()
  if not node_ready() then return end
  p = platform.start{ env = { ONBOARDING = "both" } }
end

function TestPlatformBrowser.teardownClass()
  if p then p:stop() end
end

-- browse(scenario) -> the JSON the node script printed (ok = true asserted).
local function browse(scenario)
  local ok, why = node_ready()
  lu.skipIf(not ok, why)
  local f = io.open(CHROMIUM, "r")
  lu.assertNotNil(f, CHROMIUM .. " is missing: run `make deps` (APT_PACKAGES has chromium)")
  f:close()
  os.execute("mkdir -p " .. stripe_node.q(SHOTS))
  local out, code = stripe_node.sh(string.format("CHROMIUM=%s timeout 120 node spec/support/browser_flow.js %s %s %s",
    stripe_node.q(CHROMIUM), scenario, stripe_node.q(p.url), stripe_node.q(SHOTS)))
  local line = out:match("(%b{})%s*$")
  local result = line and cjson.decode(line)
  lu.assertIsTable(result, "browser_flow.js " .. scenario .. " printed no result (exit " .. tostring(code) .. "):\n" .. out)
  lu.assertTrue(result.ok, "browser_flow.js " .. scenario .. ": " .. tostring(result.error))
  lu.assertEquals(code, 0, out)
  lu.assertEquals(result.consoleErrors, {}, "no console errors (CSP violations show there)")
  return result
end

local function account_of(url)
  return url:match("/connected%?account=(acct_[%w_]+)$")
end

function TestPlatformBrowser.test_approve_lands_on_the_success_page()
  local before = p:token_calls()
  local r = browse("approve")
  lu.assertEquals(r.landing.url, p.url .. "/")
  lu.assertEquals(r.landing.title, "Connect your Stripe account")
  lu.assertStrContains(r.consent.url, p.fake.url .. "/oauth/authorize?")
  lu.assertStrContains(r.consent.text, "wants to connect to your Stripe account")
  local id = account_of(r.done.url)
  lu.assertNotNil(id, "the success page URL carries the account: " .. r.done.url)
  lu.assertEquals(r.done.title, "Stripe account connected")
  lu.assertStrContains(r.done.text, "You're connected")
  lu.assertStrContains(r.done.text, id)
  lu.assertEquals(p:token_calls(), before + 1)
  local status, body = p:admin("GET", "/admin/accounts/" .. id)
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.status, "connected")
  -- the binding cookie as the browser stored it
  lu.assertEquals(#r.cookies, 1)
  lu.assertEquals(r.cookies[1].name, "sc_bind")
  lu.assertTrue(r.cookies[1].httpOnly)
  lu.assertEquals(r.cookies[1].sameSite, "Lax")
end

function TestPlatformBrowser.test_deny_lands_on_the_declined_page()
  local before = p:token_calls()
  local r = browse("deny")
  lu.assertStrContains(r.done.url, p.url .. "/oauth/callback?error=access_denied")
  lu.assertEquals(r.done.title, "You declined to connect")
  lu.assertStrContains(r.done.text, "No account was connected")
  local again
  for _, a in ipairs(r.done.links) do
    if a.href == "/connect" then again = a end
  end
  lu.assertNotNil(again, "a try-again link to /connect")
  lu.assertEquals(p:token_calls(), before)
end

function TestPlatformBrowser.test_two_tabs_in_one_browser_both_complete()
  local before = p:token_calls()
  local r = browse("two_tabs")
  local a1, a2 = account_of(r.tabs[1].url), account_of(r.tabs[2].url)
  lu.assertNotNil(a1, r.tabs[1].url)
  lu.assertNotNil(a2, r.tabs[2].url)
  lu.assertNotEquals(a1, a2)
  for i, tab in ipairs(r.tabs) do lu.assertStrContains(tab.text, "You're connected", false, "tab " .. i) end
  lu.assertEquals(r.cookies, { "sc_bind" }, "one binding cookie for both tabs")
  lu.assertEquals(p:token_calls(), before + 2)
end

function TestPlatformBrowser.test_account_links_onboarding()
  local r = browse("account_links")
  lu.assertStrContains(r.onboarding.url, p.fake.url .. "/setup/s/")
  lu.assertStrContains(r.onboarding.text, "Set up your Stripe account")
  local id = account_of(r.done.url)
  lu.assertNotNil(id, "back on the success page: " .. r.done.url)
  lu.assertEquals(r.done.title, "Stripe account connected")
  local status, body = p:admin("GET", "/admin/accounts/" .. id)
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.status, "connected")
  lu.assertEquals(body.data.onboarding, "account_links")
end

return { TestPlatformBrowser = TestPlatformBrowser }
