-- The platform's pages in a real browser: Debian's chromium, headless, driven
-- by playwright-core (spec/support/browser_flow.js) against the platform and
-- the fake Connect on loopback.  One browser process walks:
--   approve        home → Connect → the fake's consent page, with the policy's
--                  prefilled fields → Approve → the success page with the account id;
--   admin          sign in → that account listed → Disconnect → confirm →
--                  listed as disconnected (and under the Disconnected filter) → sign out;
--   deny           → the declined page with a try-again link;
--   tampered       the authorize URL's state changed → Approve → the 403 page;
--   two_tabs       two tabs of one browser both complete;
--   account_links  (ONBOARDING=both) the home page's form → the fake's
--                  onboarding page → Submit → the success page.
-- Every page of every walk (the fake's are ours too) must have no console
-- error, no CSP violation, no horizontal scrollbar at 375 px wide, and text
-- at WCAG AA contrast against its background (4.5:1, 3:1 when large); a
-- self-check page made to fail each check shows they can.  Screenshots of
-- every step go to $BROWSER_SHOTS (default build/screens): WALK-STEP.png at
-- 1000 px wide, WALK-STEP.375.png at 375.
--
-- Skipped only when node/npm is absent.  A missing /usr/bin/chromium is a
-- failure: `make deps` installs it (APT_PACKAGES).
local lu = require "luaunit"
local cjson = require "cjson.safe"
local platform = require "support.platform"
local stripe_node = require "support.stripe_node"
local sorted_keys = require("stripe_connect.util").sorted_keys

local CHROMIUM = os.getenv("CHROMIUM") or "/usr/bin/chromium"
local SHOTS = os.getenv("BROWSER_SHOTS") or "build/screens"
local POLICY = "spec/support/browser_policy.lua"

local p, result

local TestPlatformBrowser = {}

local function node_ready()
  return stripe_node.ensure{ "playwright-core" }
end

function TestPlatformBrowser.setupClass()
  if not node_ready() then return end
  p = platform.start{ env = { ONBOARDING = "both", POLICY = POLICY } }
end

function TestPlatformBrowser.teardownClass()
  if p then p:stop() end
end

-- walks() -> the walks' results (browser_flow.js runs once, for all tests).
local function walks()
  local ok, why = node_ready()
  lu.skipIf(not ok, why)
  if result == nil then
    local f = io.open(CHROMIUM, "r")
    lu.assertNotNil(f, CHROMIUM .. " is missing: run `make deps` (APT_PACKAGES has chromium)")
    f:close()
    os.execute("mkdir -p " .. stripe_node.q(SHOTS) .. " && rm -f " .. stripe_node.q(SHOTS) .. "/*.png")
    local out, code = stripe_node.sh(string.format(
      "CHROMIUM=%s PLATFORM_URL=%s FAKE_URL=%s ADMIN_TOKEN=%s timeout 300 node spec/support/browser_flow.js %s",
      stripe_node.q(CHROMIUM), stripe_node.q(p.url), stripe_node.q(p.fake.url), stripe_node.q(platform.ADMIN_TOKEN),
      stripe_node.q(SHOTS)))
    local line = out:match("(%b{})%s*$")
    result = line and cjson.decode(line) or { ok = false, error = "printed no result (exit " .. tostring(code) .. "):\n" .. out }
  end
  lu.assertTrue(result.ok, "browser_flow.js: " .. tostring(result.error))
  return result.walks
end

-- The page checks of one step: a viewport meta for phones, no horizontal
-- scrollbar at 375 px, no text below AA contrast (the offenders listed).
local function check_step(name, s)
  lu.assertStrContains(type(s.viewport) == "string" and s.viewport or "", "width=device-width", false,
    name .. ": the page's viewport meta makes phones lay it out at their width")
  lu.assertFalse(s.overflow.horizontal, string.format("%s: a horizontal scrollbar at 375 px (scrollWidth %d > clientWidth %d)",
    name, s.overflow.scrollWidth, s.overflow.clientWidth))
  lu.assertTrue(s.contrast.checked > 0, name .. ": the contrast audit saw no text")
  if #s.contrast.offenders > 0 then
    local lines = {}
    for _, o in ipairs(s.contrast.offenders) do
      lines[#lines + 1] = string.format("  %s %q: %s on %s = %s, needs %s (%spx%s)%s", o.where, o.text,
        tostring(o.color), tostring(o.background), tostring(o.ratio), tostring(o.required), tostring(o.fontSize),
        o.bold and " bold" or "", o.problem and (" " .. o.problem) or "")
    end
    lu.fail(name .. ": text below WCAG AA contrast:\n" .. table.concat(lines, "\n"))
  end
end

-- console_errors(w) -> w's console errors but chromium's note on a step's
-- own document answered with the error status the spec expects of it (the
-- admin sign-in's 401, the tampered state's 403): the spec asserts those
-- statuses; any other resource failing still counts.
local function console_errors(w)
  local expected = {}
  for _, s in pairs(w.steps) do
    if s.status and s.status >= 400 then
      expected[s.url .. "\n" .. string.format("Failed to load resource: the server responded with a status of %d", s.status)] = true
    end
  end
  local errors = {}
  for _, e in ipairs(w.consoleErrors) do
    local note = e.text:match("^(Failed to load resource: the server responded with a status of %d+) %(")
    if not (note and expected[tostring(e.source) .. "\n" .. note]) then errors[#errors + 1] = e end
  end
  return errors
end

-- walk(name) -> that walk's result, ok and every page checked.
local function walk(name)
  local w = walks()[name]
  lu.assertIsTable(w, "no result for the walk " .. name)
  lu.assertTrue(w.ok, name .. ": " .. tostring(w.error))
  lu.assertEquals(console_errors(w), {}, name .. ": console errors")
  lu.assertEquals(w.cspViolations, {}, name .. ": CSP violations")
  for _, step in ipairs(sorted_keys(w.steps)) do check_step(name .. "-" .. step, w.steps[step]) end
  return w
end

local function account_of(url)
  return url:match("/connected%?account=(acct_[%w_]+)$")
end

local function link_to(s, href)
  for _, a in ipairs(s.links) do
    if a.href == href then return a end
  end
end

function TestPlatformBrowser.test_each_check_can_fail()
  local w = walks().selfcheck
  lu.assertTrue(w.ok, tostring(w.error))
  local s = w.steps.page
  -- the contrast function on known pairs, in the page
  local u = s.contrast.unit
  lu.assertAlmostEquals(u.black_on_white, 21, 1e-9)
  lu.assertTrue(u.grey777_on_white < 4.5 and u.grey777_on_white > 4.47, tostring(u.grey777_on_white))
  lu.assertTrue(u.grey767676_on_white >= 4.5 and u.grey767676_on_white < 4.55, tostring(u.grey767676_on_white))
  lu.assertEquals(u.half_black_over_white, "#808080")
  -- the audit flags exactly the elements made to fail (large text has the
  -- lower bar; translucent backgrounds are composited; ancestors walked)
  local flagged = {}
  for _, o in ipairs(s.contrast.offenders) do flagged[#flagged + 1] = o.where end
  table.sort(flagged)
  lu.assertEquals(flagged, { "p#fail-grey", "p#fail-half", "p#fail-small" })
  lu.assertTrue(s.overflow.horizontal, "the 600 px box overflows at 375 px")
  lu.assertEquals(s.viewport, cjson.null, "the self-check page has no viewport meta")
  lu.assertEquals(#w.cspViolations, 1, "the blocked style attribute: " .. cjson.encode(w.cspViolations))
  lu.assertStrContains(w.cspViolations[1].directive, "style-src")
  lu.assertTrue(#w.consoleErrors >= 1, "chromium reports the violation on the console too")
  lu.assertStrContains(w.consoleErrors[1].text, "Content Security Policy")
end

function TestPlatformBrowser.test_approve_through_the_consent_page_with_prefilled_fields()
  local r = walk("approve")
  local home, consent, done = r.steps.home, r.steps.consent, r.steps.success
  lu.assertEquals(home.url, p.url .. "/")
  lu.assertEquals(home.title, "Connect your Stripe account")
  lu.assertStrContains(consent.url, p.fake.url .. "/oauth/authorize?")
  lu.assertStrContains(consent.text, "wants to connect to your Stripe account")
  -- the policy's prefill, as the user typed it (escaped, not mangled)
  lu.assertEquals(r.prefilled, { { "business_name", "Jenny's Bikes & Co" }, { "country", "US" },
    { "email", "jenny.rosen@example.com" } })
  local id = account_of(done.url)
  lu.assertNotNil(id, "the success page URL carries the account: " .. done.url)
  lu.assertEquals(done.status, 200)
  lu.assertEquals(done.title, "Stripe account connected")
  lu.assertStrContains(done.text, "You're connected")
  lu.assertStrContains(done.text, id)
  lu.assertEquals(r.tokenCalls, 1)
  -- the binding cookie as the browser stored it
  lu.assertEquals(#r.cookies, 1)
  lu.assertEquals(r.cookies[1].name, "sc_bind")
  lu.assertTrue(r.cookies[1].httpOnly)
  lu.assertEquals(r.cookies[1].sameSite, "Lax")
end

function TestPlatformBrowser.test_admin_disconnects_the_account_and_signs_out()
  local id = account_of(walk("approve").steps.success.url)
  local r = walk("admin")
  lu.assertEquals(r.account, id, "the admin walk disconnects the account the approve walk connected")
  lu.assertEquals(r.steps.signin.status, 401)
  lu.assertEquals(r.steps.signin.title, "Admin")
  local function row(rows)
    for _, x in ipairs(rows) do if x.account == id then return x end end
  end
  lu.assertEquals(r.steps.list.url, p.url .. "/admin")
  lu.assertEquals(r.steps.list.title, "Connected accounts")
  lu.assertEquals((row(r.listed) or {}).status, "connected", cjson.encode(r.listed))
  lu.assertEquals(r.steps.confirm.url, p.url .. "/admin/accounts/" .. id .. "/disconnect")
  lu.assertEquals(r.steps.confirm.title, "Disconnect " .. id .. "?")
  lu.assertNotNil(link_to(r.steps.confirm, "/admin"), "the confirm page has a way back")
  lu.assertStrContains(r.steps.disconnected.url, p.url .. "/admin?done=")
  lu.assertStrContains(r.steps.disconnected.text, id)
  lu.assertEquals((row(r.afterDisconnect) or {}).status, "disconnected", cjson.encode(r.afterDisconnect))
  lu.assertEquals(r.steps.filtered.url, p.url .. "/admin?status=disconnected")
  lu.assertEquals((row(r.filtered) or {}).status, "disconnected", cjson.encode(r.filtered))
  for _, x in ipairs(r.filtered) do lu.assertEquals(x.status, "disconnected") end
  lu.assertEquals(r.steps["signed-out"].url, p.url .. "/admin?signed_out=1")
  lu.assertStrContains(r.steps["signed-out"].text, "You are signed out.")
  lu.assertEquals(r.steps["list-again"].status, 401)
  lu.assertEquals(r.signInForm, 1, "the list asks for the token again")
  lu.assertEquals(r.cookies, {}, "the admin session cookie is gone")
  local status, body = p:admin("GET", "/admin/accounts/" .. id)
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.status, "disconnected")
end

function TestPlatformBrowser.test_deny_lands_on_the_declined_page()
  local r = walk("deny")
  local done = r.steps.declined
  lu.assertStrContains(done.url, p.url .. "/oauth/callback?error=access_denied")
  lu.assertEquals(done.title, "You declined to connect")
  lu.assertStrContains(done.text, "No account was connected")
  lu.assertNotNil(link_to(done, "/connect"), "a try-again link to /connect")
  lu.assertEquals(r.tokenCalls, 0)
end

function TestPlatformBrowser.test_a_tampered_state_gets_the_403_page()
  local r = walk("tampered")
  local done = r.steps.rejected
  lu.assertStrContains(done.url, p.url .. "/oauth/callback?")
  lu.assertEquals(done.status, 403)
  lu.assertEquals(done.title, "This connection link is not valid")
  lu.assertStrContains(done.text, "Please start again")
  lu.assertNotNil(link_to(done, "/connect"), "a start-again link to /connect")
  lu.assertFalse(r.stateShown, "the page does not echo the state")
  lu.assertEquals(r.tokenCalls, 0, "a tampered state is never exchanged")
end

function TestPlatformBrowser.test_two_tabs_in_one_browser_both_complete()
  local r = walk("two_tabs")
  local a1, a2 = account_of(r.steps["tab1-success"].url), account_of(r.steps["tab2-success"].url)
  lu.assertNotNil(a1, r.steps["tab1-success"].url)
  lu.assertNotNil(a2, r.steps["tab2-success"].url)
  lu.assertNotEquals(a1, a2)
  for _, tab in ipairs{ "tab1", "tab2" } do lu.assertStrContains(r.steps[tab .. "-success"].text, "You're connected", false, tab) end
  lu.assertEquals(r.cookies, { "sc_bind" }, "one binding cookie for both tabs")
  lu.assertEquals(r.tokenCalls, 2)
end

function TestPlatformBrowser.test_account_links_onboarding()
  local r = walk("account_links")
  lu.assertStrContains(r.steps.onboarding.url, p.fake.url .. "/setup/s/")
  lu.assertStrContains(r.steps.onboarding.text, "Set up your Stripe account")
  local id = account_of(r.steps.success.url)
  lu.assertNotNil(id, "back on the success page: " .. r.steps.success.url)
  lu.assertEquals(r.steps.success.title, "Stripe account connected")
  local status, body = p:admin("GET", "/admin/accounts/" .. id)
  lu.assertEquals(status, 200)
  lu.assertEquals(body.data.status, "connected")
  lu.assertEquals(body.data.onboarding, "account_links")
end

return { TestPlatformBrowser = TestPlatformBrowser }
