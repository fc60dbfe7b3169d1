-- Fault injection for every outbound call (issue 13, deliver 4): the code
-- exchange (callback), refresh, deauthorize and the API client (admin sync,
-- GET /v1/account) against spec/support/faulty_stripe.lua, which answers
-- each fault on demand: reset mid-response, timeout, 500, 429, HTML, JSON
-- cut short, a body past the client's cap, a drip-fed body; and a Stripe
-- that refuses connections (a port nobody listens on).  Each case: the
-- documented answer (doc/reference.md "Fault injection"), no crash (no handler
-- error, /healthz still 200), no partial account, no secret in the page,
-- the JSON or the log, and the same step succeeds once Stripe is back.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local tokens = require "stripe_connect.tokens"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"
local files = require "support.files"
local store_mod = require "stripe_connect.store"

-- mode -> the callback's status, refresh's and deauthorize's status (sync: 502)
local CASES = {
  { "reset", 502, 502 }, { "timeout", 504, 504 }, { "500", 502, 502 }, { "429", 502, 502 },
  { "html", 502, 502 }, { "badjson", 502, 502 }, { "huge", 502, 502 }, { "drip", 504, 504 },
}
local SECRETS = { "sk_test_faultAT", "rt_faultRT", "ac_faultcode", "sk_test_leaked", platform.SECRET_KEY,
  "sk_test_account", "rt_account" }

local TestFaultInjection = {}
local p, modefile, upstream_pid

local function set_mode(m) files.write(modefile, m .. "\n") end

function TestFaultInjection.setupClass()
  modefile = os.tmpname()
  set_mode("ok")
  local port
  upstream_pid, port = server.run_listener("spec/support/faulty_stripe.lua", modefile)
  local base = "http://127.0.0.1:" .. port
  p = platform.start{ env = { STRIPE_CONNECT_BASE = base, STRIPE_API_BASE = base, STRIPE_TIMEOUT = "1" } }
end

function TestFaultInjection.teardownClass()
  if p then p:stop() end
  if upstream_pid then os.execute("kill " .. upstream_pid .. " 2>/dev/null") end
  os.remove(modefile)
end

local function with_store(q, fn)
  local s = tokens.wrap(assert(store_mod.open(q.env.DATABASE)), assert(tokens.keyring(platform.TOKEN_KEYS)),
    function() end)
  local ok, r = pcall(fn, s)
  s:close()
  if not ok then error(r, 0) end
  return r
end

local function put_connected(q, id)
  with_store(q, function(s)
    assert(s:put_account{ id = id, status = "connected", scope = "read_write", livemode = false,
      access_token = "sk_test_account_" .. id, refresh_token = "rt_account_" .. id, connected_at = os.time() })
  end)
end

local function assert_nothing_secret(text, what)
  for _, secret in ipairs(SECRETS) do lu.assertNotStrContains(text, secret, false, what) end
end

local function callback(q)
  local b = http.browser()
  local auth = q:begin(b)
  return assert(b:get(q.url .. "/oauth/callback?code=ac_faultcode123&state=" .. core.url_encode(auth.args.state)))
end

-- the four calls of one case against platform q; `mode` names the case
local function check_calls(q, mode, cb_status, op_status, switch)
  -- the code exchange
  local res = callback(q)
  lu.assertEquals(res.status, cb_status, mode .. ": callback")
  lu.assertStrContains(res.body, 'href="/connect"', false, mode .. ": the page offers to start again")
  assert_nothing_secret(res.body, mode .. ": callback page")
  lu.assertNil(with_store(q, function(s) return s:get_account("acct_faultok") end), mode .. ": no partial account")
  -- refresh, deauthorize, sync on a connected account
  put_connected(q, "acct_faultop")
  local before = with_store(q, function(s) return s:get_account("acct_faultop") end)
  for _, op in ipairs({ "refresh", "deauthorize", "sync" }) do
    local status, body, raw = q:admin("POST", "/admin/accounts/acct_faultop/" .. op)
    -- sync (the API client) answers 502 stripe_error whatever failed
    lu.assertEquals(status, op == "sync" and 502 or op_status, mode .. ": " .. op .. " " .. tostring(raw.body))
    lu.assertIsTable(body.error, mode .. ": " .. op)
    assert_nothing_secret(raw.body, mode .. ": " .. op)
    local a = with_store(q, function(s) return s:get_account("acct_faultop") end)
    lu.assertEquals({ a.status, a.access_token, a.refresh_token },
      { "connected", before.access_token, before.refresh_token }, mode .. ": " .. op .. " leaves the account as it was")
  end
  lu.assertEquals(assert(http.get(q.url .. "/healthz")).status, 200, mode .. ": still serving")
  -- Stripe is back: every step works again
  switch()
  res = callback(q)
  lu.assertEquals(res.status, 303, mode .. ": the user starts again and connects")
  lu.assertEquals(with_store(q, function(s) return s:get_account("acct_faultok") end).access_token, "sk_test_faultAT")
  for _, op in ipairs({ "refresh", "sync", "deauthorize" }) do
    local status, _, raw = q:admin("POST", "/admin/accounts/acct_faultop/" .. op)
    lu.assertEquals(status, 200, mode .. ": " .. op .. " once Stripe is back: " .. tostring(raw.body))
  end
  with_store(q, function(s) s:delete_account("acct_faultok"); s:delete_account("acct_faultop") end)
end

function TestFaultInjection.test_every_outbound_call_under_every_fault()
  for _, case in ipairs(CASES) do
    set_mode(case[1])
    check_calls(p, case[1], case[2], case[3], function() set_mode("ok") end)
  end
  local log = p.platform:log_text()
  lu.assertNotStrContains(log, "handler error", false, "no handler crashed")
  assert_nothing_secret(log, "the platform's log")
end

function TestFaultInjection.test_connection_refused()
  local closed = "http://127.0.0.1:" .. server.free_port()
  local q = platform.start{ env = { STRIPE_CONNECT_BASE = closed, STRIPE_API_BASE = closed, STRIPE_TIMEOUT = "1" } }
  local ok, err = pcall(function()
    check_calls(q, "refused", 502, 502, function()
      q.env.STRIPE_CONNECT_BASE, q.env.STRIPE_API_BASE = p.env.STRIPE_CONNECT_BASE, p.env.STRIPE_API_BASE
      q:restart()
    end)
    local log = q.platform:log_text()
    lu.assertNotStrContains(log, "handler error")
    assert_nothing_secret(log, "log")
  end)
  q:stop()
  if not ok then error(err, 0) end
end

return { TestFaultInjection = TestFaultInjection }
