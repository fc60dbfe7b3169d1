-- The platform across restarts and failures: restart between /connect and
-- the callback (the flow still completes), after connecting (the account is
-- still listed, also after kill -9), expired state (STATE_TTL=1), Stripe
-- unreachable, admin routes off without ADMIN_TOKEN, refusal to start with
-- bad settings.
local lu = require "luaunit"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"

local TestPlatformRestart = {}

function TestPlatformRestart.test_restart_between_connect_and_callback()
  local p = platform.start{}
  local ok, err = pcall(function()
    local b = http.browser()
    local cb = p:decide(p:begin(b), "approve", "acct_restart1")
    p:restart()
    local res = assert(b:get(cb))
    lu.assertEquals(res.status, 303)
    lu.assertEquals(res.headers["location"], "/connected?account=acct_restart1")
    -- after connecting: restart, and kill -9; the account is still listed
    p:restart()
    local status, body = p:admin("GET", "/admin/accounts")
    lu.assertEquals(status, 200)
    lu.assertEquals(body.data[1].id, "acct_restart1")
    p:connect(http.browser(), { account = "acct_restart2" })
    p:kill9_restart()
    local _, body2 = p:admin("GET", "/admin/accounts/acct_restart2")
    lu.assertEquals(body2.data.status, "connected")
    -- the replay after a restart still answers the first outcome, no new token call
    local calls = p:token_calls()
    lu.assertEquals(assert(b:get(cb)).status, 303)
    lu.assertEquals(p:token_calls(), calls)
  end)
  p:stop()
  if not ok then error(err, 0) end
end

function TestPlatformRestart.test_expired_state_and_no_admin()
  local p = platform.start{ env = { STATE_TTL = "1" }, admin = false }
  local ok, err = pcall(function()
    local b = http.browser()
    local auth = p:begin(b)
    local cb = p:decide(auth, "approve")
    local issued = tonumber(auth.args.state:match("^v1%.[^.]+%.[^.]+%.(%d+)%."))
    -- wait for the clock to pass the 1-second lifetime (a clock condition, polled)
    lu.assertTrue(server.poll(function() return os.time() >= issued + 2 end, 5, 0.1))
    local res = assert(b:get(cb))
    lu.assertEquals(res.status, 403)
    lu.assertStrContains(res.body, "expired")
    lu.assertEquals(p:token_calls(), 0)
    -- admin routes are off without ADMIN_TOKEN
    lu.assertEquals((p:admin("GET", "/admin/accounts")), 404)
    lu.assertEquals((p:admin("GET", "/admin")), 404)
  end)
  p:stop()
  if not ok then error(err, 0) end
end

function TestPlatformRestart.test_stripe_unreachable_is_502()
  local p = platform.start{}
  local ok, err = pcall(function()
    local b = http.browser()
    local cb = p:decide(p:begin(b), "approve")
    p.fake:stop()
    local res = assert(b:get(cb))
    lu.assertEquals(res.status, 502)
    lu.assertStrContains(res.body, "could not reach Stripe")
    lu.assertNotStrContains(res.body, platform.SECRET_KEY)
    p.fake = nil
  end)
  p:stop()
  if not ok then error(err, 0) end
end

function TestPlatformRestart.test_refuses_to_start_naming_settings()
  local ok, err = pcall(server.start, { app = "scripts/platform.lua", ready_timeout = 5,
    env = { STRIPE_SECRET_KEY = "", STRIPE_CLIENT_ID = "acct_wrong", PUBLIC_URL = "", STATE_SECRETS = "k1:short" } })
  lu.assertFalse(ok)
  err = tostring(err)
  lu.assertStrContains(err, "refusing to start")
  lu.assertStrContains(err, "STRIPE_SECRET_KEY is not set")
  lu.assertStrContains(err, "STRIPE_CLIENT_ID must be")
  lu.assertStrContains(err, "PUBLIC_URL is not set")
  lu.assertStrContains(err, "STATE_SECRETS is invalid")
  lu.assertNotStrContains(err, "k1:short")
end

return { TestPlatformRestart = TestPlatformRestart }
