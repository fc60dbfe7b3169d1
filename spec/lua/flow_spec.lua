-- stripe_connect.flow with a memory store and a fake oauth module: begin
-- and complete rows (approve, deny, state problems, replay, Stripe failures),
-- and the account operations.
local lu = require "luaunit"
local flow = require "stripe_connect.flow"
local pages = require "stripe_connect.pages"
local state = require "stripe_connect.state"
local store_mod = require "stripe_connect.store"
local policy_mod = require "stripe_connect.policy"

local NOW = 1700000000

local function fake_oauth(answers)
  local o = { calls = {} }
  local function answer(kind, opts)
    o.calls[#o.calls + 1] = { kind = kind, opts = opts }
    local a = answers[kind]
    if type(a) == "function" then return a(opts) end
    return a and a[1], a and a[2]
  end
  function o.token(opts) return answer("token", opts) end
  function o.refresh(opts) return answer("refresh", opts) end
  function o.deauthorize(opts) return answer("deauthorize", opts) end
  return o
end

local OK_TOKEN = { { stripe_user_id = "acct_1", scope = "read_write", livemode = false, token_type = "bearer",
  access_token = "sk_access", refresh_token = "rt_1", stripe_publishable_key = "pk_1" } }

local function new_ctx(answers, hooks)
  local cfg = {
    keyring = assert(state.keyring("k1:" .. ("s"):rep(32))), state_ttl = 1800, secure = false,
    client_id = "ca_test", secret_key = "sk_test_x", connect_base = "http://127.0.0.1:9", stripe_timeout = 5,
    redirect_uris = { "http://127.0.0.1:8/oauth/callback" },
  }
  local logs = {}
  return {
    config = cfg, store = store_mod.open("memory:"),
    policy = policy_mod.new(hooks, { redirect_uris = cfg.redirect_uris, log = function(m) logs[#logs + 1] = m end }),
    oauth = fake_oauth(answers or { token = OK_TOKEN }),
    now = function() return NOW end, sleep = function() end,
    log = function(m) logs[#logs + 1] = m end, logs = logs, replay_wait = 0,
  }
end

local function parse_location(loc)
  local args = {}
  for k, v in loc:gmatch("([^?&=]+)=([^&]*)") do
    args[k] = v:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
  end
  return args
end

-- begin() and return the browser cookie value and the state.
local function start(ctx, args)
  local req = { method = "GET", path = "/connect", args = args or {}, cookies = {}, headers = {} }
  local res = pages.respond(ctx.policy, flow.begin(ctx, req), req)
  lu.assertEquals(res.status, 302)
  local cookie = res.headers["Set-Cookie"]:match("^sc_bind=([^;]+)")
  return cookie, parse_location(res.headers.Location).state, res
end

local function callback(ctx, cookie, args)
  local req = { method = "GET", path = "/oauth/callback", args = args, cookies = { sc_bind = cookie }, headers = {} }
  return pages.respond(ctx.policy, flow.complete(ctx, req), req)
end

local TestFlow = {}

function TestFlow.test_begin_redirects_with_state_and_cookie()
  local ctx = new_ctx()
  local cookie, st, res = start(ctx, { return_to = "/dash" })
  lu.assertTrue(state.valid_binding(cookie))
  local loc = res.headers.Location
  lu.assertStrContains(loc, "http://127.0.0.1:9/oauth/authorize?")
  local q = parse_location(loc)
  lu.assertEquals(q.response_type, "code")
  lu.assertEquals(q.client_id, "ca_test")
  lu.assertEquals(q.scope, "read_write")
  lu.assertEquals(q.redirect_uri, "http://127.0.0.1:8/oauth/callback")
  local claims = state.verify(ctx.config.keyring, st, { binding = cookie, now = NOW })
  lu.assertEquals(claims.return_to, "/dash")
  lu.assertStrContains(res.headers["Set-Cookie"], "HttpOnly")
  lu.assertStrContains(res.headers["Set-Cookie"], "SameSite=Lax")
  lu.assertEquals(res.headers["Cache-Control"], "no-store")
  -- a second tab reuses the browser's cookie
  local res2 = pages.outcome(flow.begin(ctx, { args = {}, cookies = { sc_bind = cookie }, headers = {} }))
  lu.assertStrContains(res2.headers["Set-Cookie"], "sc_bind=" .. cookie)
  -- a foreign return_to is dropped
  local cookie3, st3 = start(ctx, { return_to = "//evil.example" })
  lu.assertNil(state.verify(ctx.config.keyring, st3, { binding = cookie3, now = NOW }).return_to)
end

-- The authorize URL's fixed part is made once per ctx (no scope or
-- redirect_uri hook); every row's Location is what oauth.authorize_url
-- builds from the same values, hooks or not, and the hooks run in the
-- query's order.
function TestFlow.test_begin_location_equals_authorize_url()
  local oauth = require "stripe_connect.oauth"
  local order
  local function hook(name, value) return function() order[#order + 1] = name; return value end end
  local rows = {
    -- name, hooks, the hooks' order, expected extra authorize options
    { "no hooks (fixed part)", nil, {}, {} },
    { "scope hook", { scope = hook("scope", "read_only") }, { "scope" }, { scope = "read_only" } },
    { "redirect_uri hook", { redirect_uri = hook("redirect_uri", "http://127.0.0.1:8/oauth/callback") },
      { "redirect_uri" }, {} },
    { "prefill", { prefill = hook("prefill", { email = "a@b.example", url = "no scheme" }) }, { "prefill" },
      { stripe_user = { email = "a@b.example" } } },
    { "empty authorize_params", { authorize_params = hook("authorize_params", {}) }, { "authorize_params" }, {} },
    { "every hook", { scope = hook("scope", "read_write"), prefill = hook("prefill", { country = "US" }),
        authorize_params = hook("authorize_params", { stripe_landing = "register", always_prompt = true }),
        redirect_uri = hook("redirect_uri", "http://127.0.0.1:8/oauth/callback") },
      { "scope", "redirect_uri", "prefill", "authorize_params" },
      { stripe_user = { country = "US" }, stripe_landing = "register", always_prompt = true } },
  }
  for _, r in ipairs(rows) do
    local ctx = new_ctx(nil, r[2])
    for _ = 1, 2 do
      order = {}
      local _, st, res = start(ctx)
      local want = { client_id = "ca_test", redirect_uri = "http://127.0.0.1:8/oauth/callback",
        connect_base = "http://127.0.0.1:9", state = st }
      for k, v in pairs(r[4]) do want[k] = v end
      lu.assertEquals(res.headers.Location, oauth.authorize_url(want), r[1])
      lu.assertEquals(order, r[3], r[1])
    end
    lu.assertEquals(ctx.authorize_head ~= false, r[2] == nil or not (r[2].scope or r[2].redirect_uri), r[1])
  end
end

function TestFlow.test_callback_rows()
  local rows = {
    -- name, oauth answers, callback args (STATE = the real state), status, reason, token calls
    { "approve", { token = OK_TOKEN }, { code = "ac_1", scope = "read_write" }, 303, nil, 1 },
    { "deny", {}, { error = "access_denied", error_description = "The user denied your request" }, 200, "access_denied", 0 },
    { "other stripe error", {}, { error = "invalid_scope" }, 400, "stripe_refused", 0 },
    { "missing code", {}, {}, 400, "missing_code", 0 },
    { "invalid_grant", { token = { nil, { type = "oauth", error = "invalid_grant", status = 400 } } },
      { code = "ac_bad" }, 400, "invalid_grant", 1 },
    { "other oauth error", { token = { nil, { type = "oauth", error = "invalid_client", status = 401 } } },
      { code = "ac_1" }, 400, "oauth_error", 1 },
    { "timeout", { token = { nil, { type = "transport", code = "timeout" } } }, { code = "ac_1" }, 504, "stripe_timeout", 1 },
    { "unreachable", { token = { nil, { type = "transport", code = "connect" } } }, { code = "ac_1" }, 502, "stripe_unreachable", 1 },
    { "stripe 500", { token = { nil, { type = "api", status = 500 } } }, { code = "ac_1" }, 502, "stripe_error", 1 },
    -- An answer whose stripe_user_id is no account id was stored as-is (an
    -- empty one raised inside put_account: a 500 and a claim without outcome).
    { "stripe_user_id not an account id", { token = { { stripe_user_id = "acct_1\"><x", scope = "read_write" } } },
      { code = "ac_1" }, 502, "stripe_error", 1 },
    { "stripe_user_id empty", { token = { { stripe_user_id = "", scope = "read_write" } } },
      { code = "ac_1" }, 502, "stripe_error", 1 },
  }
  for _, row in ipairs(rows) do
    local name, answers, args, want_status, want_reason, want_calls = table.unpack(row)
    local ctx = new_ctx(answers)
    local cookie, st = start(ctx)
    args.state = st
    local res = callback(ctx, cookie, args)
    lu.assertEquals(res.status, want_status, name)
    lu.assertEquals(res.headers["Cache-Control"], "no-store", name)
    lu.assertEquals(res.headers["Referrer-Policy"], "no-referrer", name)
    lu.assertEquals(#ctx.oauth.calls, want_calls, name)
    if want_status == 303 then
      lu.assertEquals(res.headers.Location, "/connected?account=acct_1", name)
      local a = ctx.store:get_account("acct_1")
      lu.assertEquals(a.refresh_token, "rt_1", name)
      lu.assertEquals(a.connected_at, NOW, name)
    else
      lu.assertStrContains(res.body, (pages.REASONS[want_reason][1]:gsub("'", "&#39;")), false, name)
      lu.assertNotStrContains(res.body, "ac_", false, name)
      lu.assertNotStrContains(res.body, "sk_", false, name)
    end
    -- replay: the same answer, no further token call
    local again = callback(ctx, cookie, args)
    lu.assertEquals(again.status, want_status, name .. " (replay)")
    lu.assertEquals(again.headers.Location, res.headers.Location, name .. " (replay)")
    lu.assertEquals(#ctx.oauth.calls, want_calls, name .. " (replay)")
  end
end

function TestFlow.test_state_problems_are_403_without_token_call()
  local ctx = new_ctx()
  local cookie, st = start(ctx)
  local other = state.new_binding()
  local rows = {
    { "no state", cookie, { code = "ac_1" }, "This connection link is not valid" },
    { "tampered", cookie, { code = "ac_1", state = st:sub(1, -2) .. (st:sub(-1) == "A" and "B" or "A") }, "not valid" },
    { "other browser", other, { code = "ac_1", state = st }, "browser where you started" },
    { "no cookie", nil, { code = "ac_1", state = st }, "browser where you started" },
  }
  for _, row in ipairs(rows) do
    local res = callback(ctx, row[2], row[3])
    lu.assertEquals(res.status, 403, row[1])
    lu.assertStrContains(res.body, row[4], false, row[1])
    lu.assertStrContains(res.body, 'href="/connect"', false, row[1])
  end
  -- Stripe's denial without a state: the declined page, nothing claimed
  local denied = callback(ctx, cookie, { error = "access_denied" })
  lu.assertEquals(denied.status, 200)
  lu.assertStrContains(denied.body, "You declined")
  lu.assertEquals(callback(ctx, cookie, { error = "invalid_scope" }).status, 400)
  ctx.now = function() return NOW + 1800 end
  lu.assertEquals(callback(ctx, cookie, { code = "ac_1", state = st }).status, 403)
  lu.assertEquals(#ctx.oauth.calls, 0)
  -- the state was not consumed by those attempts: the right browser still completes
  ctx.now = function() return NOW end
  lu.assertEquals(callback(ctx, cookie, { code = "ac_1", state = st }).status, 303)
end

function TestFlow.test_return_to_travels_in_state()
  local ctx = new_ctx()
  local cookie, st = start(ctx, { return_to = "/dashboard?tab=payments" })
  local res = callback(ctx, cookie, { code = "ac_1", state = st })
  lu.assertEquals(res.headers.Location, "/dashboard?tab=payments")
end

-- The state's nonce is claimed in the store before the code is spent: at the
-- moment of the token call the flow exists (claimed, no outcome yet), and a
-- callback that dies inside the token call leaves the claim, so a replay
-- never spends the code again.
function TestFlow.test_state_is_consumed_before_the_token_call()
  local seen
  local ctx
  ctx = new_ctx({ token = function()
    local claims = state.verify(ctx.config.keyring, seen.state, { binding = seen.cookie, now = NOW })
    seen.flow = ctx.store:get_flow(claims.nonce)
    return OK_TOKEN[1]
  end })
  local cookie, st = start(ctx)
  seen = { cookie = cookie, state = st }
  lu.assertEquals(callback(ctx, cookie, { code = "ac_1", state = st }).status, 303)
  lu.assertNotNil(seen.flow, "claimed before the token call")
  lu.assertNil(seen.flow.outcome, "no outcome yet during the token call")
  -- A token call that raises (the worker's request dies): the claim stays.
  local ctx2 = new_ctx({ token = function() error("worker died mid-call") end })
  local cookie2, st2 = start(ctx2)
  lu.assertFalse(pcall(callback, ctx2, cookie2, { code = "ac_2", state = st2 }))
  local res = callback(ctx2, cookie2, { code = "ac_2", state = st2 })
  lu.assertEquals(res.status, 503, "the replay waits for an outcome; it never calls Stripe again")
  lu.assertEquals(#ctx2.oauth.calls, 1)
end

function TestFlow.test_twin_in_flight_waits_for_outcome()
  local ctx = new_ctx()
  local cookie, st = start(ctx)
  local claims = state.verify(ctx.config.keyring, st, { binding = cookie, now = NOW })
  -- Simulate the first request: claimed, no outcome yet.
  lu.assertTrue(ctx.store:claim_flow(claims.nonce, claims.expires_at))
  ctx.replay_wait = 5
  local polls = 0
  ctx.sleep = function()
    polls = polls + 1
    if polls == 3 then ctx.store:record_outcome(claims.nonce, { kind = "connected", status = 303, location = "/x" }) end
  end
  local res = callback(ctx, cookie, { code = "ac_1", state = st })
  lu.assertEquals(res.status, 303)
  lu.assertEquals(res.headers.Location, "/x")
  lu.assertEquals(#ctx.oauth.calls, 0)
  -- No outcome ever: 503 "still connecting", still no token call.
  local cookie2, st2 = start(ctx)
  local c2 = state.verify(ctx.config.keyring, st2, { binding = cookie2, now = NOW })
  ctx.store:claim_flow(c2.nonce, c2.expires_at)
  ctx.replay_wait = 0
  local res2 = callback(ctx, cookie2, { code = "ac_1", state = st2 })
  lu.assertEquals(res2.status, 503)
  lu.assertEquals(#ctx.oauth.calls, 0)
  -- Claimed long ago and never answered (the process died): "interrupted", recorded.
  assert(ctx.store.db:exec{ { "UPDATE flows SET claimed_at = ? WHERE nonce = ?", NOW - 1000, c2.nonce } })
  local res3 = callback(ctx, cookie2, { code = "ac_1", state = st2 })
  lu.assertEquals(res3.status, 502)
  lu.assertStrContains(res3.body, "interrupted")
  lu.assertEquals(ctx.store:get_flow(c2.nonce).outcome.reason, "interrupted")
  lu.assertEquals(#ctx.oauth.calls, 0)
end

function TestFlow.test_hooks_run_and_raising_hooks_do_not_break_the_flow()
  local seen = {}
  local ctx = new_ctx({ token = OK_TOKEN }, {
    on_connected = function(a) seen.connected = a.id; error("hook bug") end,
    on_denied = function(err) seen.denied = err.error end,
    scope = function() return "read_only" end,
    prefill = function() return { email = "a@b.example", bogus = {} } end,
  })
  local cookie, st, res = start(ctx)
  lu.assertStrContains(res.headers.Location, "scope=read_only")
  lu.assertStrContains(res.headers.Location, "stripe_user[email]=a%40b.example")
  lu.assertEquals(callback(ctx, cookie, { code = "ac_1", state = st }).status, 303)
  lu.assertEquals(seen.connected, "acct_1")
  local cookie2, st2 = start(ctx)
  callback(ctx, cookie2, { error = "access_denied", state = st2 })
  lu.assertEquals(seen.denied, "access_denied")
end

function TestFlow.test_deauthorize_and_refresh()
  local deauthed = {}
  local ctx = new_ctx({
    token = OK_TOKEN,
    deauthorize = { { stripe_user_id = "acct_1" } },
    refresh = { { stripe_user_id = "acct_1", scope = "read_write", livemode = false, access_token = "sk_new",
      refresh_token = "rt_2" } },
  }, { on_deauthorized = function(id, source) deauthed[#deauthed + 1] = id .. ":" .. source end })
  local cookie, st = start(ctx)
  callback(ctx, cookie, { code = "ac_1", state = st })
  local a = assert(flow.refresh(ctx, "acct_1"))
  lu.assertEquals(a.refresh_token, "rt_2")
  lu.assertEquals(ctx.oauth.calls[2].opts.refresh_token, "rt_1")
  lu.assertEquals(ctx.store:get_account("acct_1").access_token, "sk_new")
  local d = assert(flow.deauthorize(ctx, "acct_1", "script"))
  lu.assertEquals(d.status, "disconnected")
  lu.assertNil(d.refresh_token)
  lu.assertEquals(deauthed, { "acct_1:script" })
  local _, err = flow.refresh(ctx, "acct_1")
  lu.assertEquals(err.status, 409)
  local _, err2 = flow.deauthorize(ctx, "acct_none", "admin")
  lu.assertEquals(err2.status, 404)
  local p = flow.public_account(d)
  lu.assertNil(p.refresh_token)
  lu.assertNil(p.access_token)
end

return { TestFlow = TestFlow }
