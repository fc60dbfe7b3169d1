-- Structured logs (issue 14, item 2): `serve --log-format json` writes one
-- JSON object per line with fixed fields (ts, level, app, event,
-- request_id); each step of a flow, each rejection with its reason and each
-- disconnect leaves its event; a request's lines share its request_id,
-- which the response echoes in X-Request-Id (the client's own when valid);
-- the fake's lines say they are the fake's; no secret, code or token.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local http = require "support.http"
local platform = require "support.platform"
local webhook = require "stripe_connect.webhook"

local TestPlatformLog = {}
local p

function TestPlatformLog.setupClass()
  p = platform.start{ args = { "--log-format", "json" } }
end

function TestPlatformLog.teardownClass()
  if p then p:stop() end
end

-- The platform's log as decoded lines (the ready line is not an event).
local function events()
  local out = {}
  for line in p.platform:log_text():gmatch("[^\n]+") do
    if not line:match("^listening on ") then
      local ev = cjson.decode(line)
      lu.assertIsTable(ev, "not a JSON line: " .. line)
      out[#out + 1] = ev
    end
  end
  return out
end

local function find(list, want)
  for _, ev in ipairs(list) do
    local all = true
    for k, v in pairs(want) do if ev[k] ~= v then all = false end end
    if all then return ev end
  end
  return nil
end

local function assert_event(list, want, what)
  local ev = find(list, want)
  if not ev then
    error((what or "event") .. " not logged: " .. cjson.encode(want), 2)
  end
  return ev
end

function TestPlatformLog.test_a_request_id_ties_the_lines_of_a_request()
  local b = http.browser()
  local res = assert(b:get(p.url .. "/connect", { ["X-Request-Id"] = "proxy-req.42:a" }))
  lu.assertEquals(res.status, 302)
  lu.assertEquals(res.headers["x-request-id"], "proxy-req.42:a")
  local cb = p:decide({ url = res.headers["location"], args = platform.parse_query(res.headers["location"]) },
    "approve", "acct_logflow1")
  local done = assert(b:get(cb, { ["X-Request-Id"] = "has a space" }))
  lu.assertEquals(done.status, 303)
  local made = done.headers["x-request-id"]
  lu.assertStrMatches(made, "^[%x]+$")
  local list = events()
  assert_event(list, { event = "connect_started", request_id = "proxy-req.42:a", app = "platform", level = "info" })
  assert_event(list, { event = "request", request_id = "proxy-req.42:a", path = "/connect", status = 302 })
  assert_event(list, { event = "connected", request_id = made, account = "acct_logflow1" })
  assert_event(list, { event = "request", request_id = made, path = "/oauth/callback", status = 303 })
  -- every line has the fixed fields
  for _, ev in ipairs(list) do
    for _, f in ipairs({ "ts", "level", "app", "event", "request_id" }) do
      lu.assertNotNil(ev[f], f .. " missing in " .. cjson.encode(ev))
    end
  end
  -- a response the host answers itself has an id too
  local nf = assert(http.get(p.url .. "/nope"))
  lu.assertStrMatches(nf.headers["x-request-id"], "^[%x]+$")
end

function TestPlatformLog.test_every_rejection_is_logged_with_its_reason()
  -- denied
  local b = http.browser()
  lu.assertEquals(p:connect(b, { decision = "deny" }).status, 200)
  -- a tampered state
  local auth = p:begin(http.browser())
  local tampered = auth.args.state:sub(1, -3) .. (auth.args.state:sub(-2) == "AA" and "BB" or "AA")
  local res = assert(http.get(p.url .. "/oauth/callback?code=ac_x&state=" .. core.url_encode(tampered)))
  lu.assertEquals(res.status, 403)
  -- another browser's callback (one without the binding cookie)
  local b1, b2 = http.browser(), http.browser()
  local cb = p:decide(p:begin(b1), "approve")
  lu.assertEquals(assert(b2:get(cb)).status, 403)
  -- a spent code: Stripe's invalid_grant
  local b3 = http.browser()
  local a3 = p:begin(b3)
  assert(b3:get(p.url .. "/oauth/callback?code=ac_spentcodespentcode&state=" .. core.url_encode(a3.args.state)))
  -- a webhook with a bad signature
  local body = webhook.event{ type = "customer.created", account = "acct_whlog" }
  res = assert(http.request{ method = "POST", url = p.url .. "/webhooks", body = body,
    headers = { ["Stripe-Signature"] = webhook.sign(body, "whsec_not_the_platforms"), ["Content-Type"] = "application/json" } })
  lu.assertEquals(res.status, 400)
  local list = events()
  assert_event(list, { event = "denied", reason = "access_denied" })
  assert_event(list, { event = "state_rejected", reason = "bad_signature", level = "warn" })
  assert_event(list, { event = "state_rejected", reason = "no_binding" }) -- b2 has no binding cookie
  assert_event(list, { event = "token_error", reason = "invalid_grant", stripe_error = "invalid_grant" })
  assert_event(list, { event = "webhook_rejected", reason = "no_match", status = 400 })
end

function TestPlatformLog.test_webhooks_and_disconnects_leave_their_lines()
  p:connect(http.browser(), { account = "acct_logwh1" })
  local res = assert(http.post_form(p.fake.url .. "/__fake/accounts/acct_logwh1/disconnect", { event_id = "evt_logwh1" }))
  lu.assertEquals(res.status, 200, res.body)
  -- Stripe's retry of the same event
  res = assert(http.post_form(p.fake.url .. "/__fake/accounts/acct_logwh1/disconnect",
    { event_id = "evt_logwh1", force = "true" }))
  lu.assertEquals(res.status, 200, res.body)
  -- the admin disconnects another
  p:connect(http.browser(), { account = "acct_logadm1" })
  lu.assertEquals((p:admin("POST", "/admin/accounts/acct_logadm1/deauthorize")), 200)
  local list = events()
  local verified = assert_event(list, { event = "webhook_verified", event_id = "evt_logwh1", account = "acct_logwh1",
    event_type = "account.application.deauthorized" })
  assert_event(list, { event = "disconnected", account = "acct_logwh1", source = "webhook",
    request_id = verified.request_id })
  assert_event(list, { event = "webhook_processed", event_id = "evt_logwh1", request_id = verified.request_id })
  assert_event(list, { event = "webhook_duplicate", event_id = "evt_logwh1" })
  assert_event(list, { event = "disconnected", account = "acct_logadm1", source = "admin" })
end

-- The fake's access lines say app=fake_connect (text format); the
-- platform's say platform; no secret, code or token in either log.
function TestPlatformLog.test_the_fake_is_marked_and_no_secret_is_written()
  p:connect(http.browser(), { account = "acct_logsecret" })
  local fake_log = p.fake:log_text()
  lu.assertStrMatches(fake_log, '.*app=fake_connect worker=1 method=POST path="/oauth/token".*')
  lu.assertNotStrContains(fake_log, "app=platform")
  for _, ev in ipairs(events()) do lu.assertEquals(ev.app, "platform") end
  local log = p.platform:log_text()
  local never = { platform.SECRET_KEY, platform.ADMIN_TOKEN, platform.WEBHOOK_SECRET, platform.STATE_SECRETS:sub(4),
    "v1.k1.", "rt_", "sk_test_", "ac_spentcodespentcode", "code=" }
  for _, s in ipairs(never) do lu.assertNotStrContains(log, s, false, "log contains " .. s) end
end

return { TestPlatformLog = TestPlatformLog }
