-- stripe_connect.app built with app.new: /connect touches no store (a store
-- whose every method raises still answers 302), the callback sweeps the
-- store now and then, and /metrics renders the registry's counters, the
-- per-route latency histogram and the store's accounts gauge.
local lu = require "luaunit"
local app = require "stripe_connect.app"
local metrics = require "stripe_connect.metrics"
local state = require "stripe_connect.state"
local store_mod = require "stripe_connect.store"
local policy_mod = require "stripe_connect.policy"

local TestApp = {}

local function config()
  return {
    keyring = assert(state.keyring("k1:" .. ("s"):rep(32))), state_ttl = 1800, secure = false,
    client_id = "ca_app_spec", secret_key = "sk_test_app_spec", connect_base = "http://127.0.0.1:9",
    stripe_timeout = 5, redirect_uris = { "http://127.0.0.1:8/oauth/callback" },
  }
end

-- A store whose every method (and any other field read) raises.
local function raising_store()
  local s = {}
  local names = { "incr", "counters", "ping", "account_counts" }
  for _, m in ipairs(store_mod.METHODS) do names[#names + 1] = m end
  for _, m in ipairs(names) do
    s[m] = function() error("store." .. m .. " called", 2) end
  end
  return setmetatable(s, { __index = function(_, k) error("store field " .. tostring(k) .. " read", 2) end })
end

local function routes_of(opts)
  local cfg = config()
  local logs = {}
  local base = { config = cfg, log = function(m) logs[#logs + 1] = m end,
    policy = policy_mod.new(nil, { redirect_uris = cfg.redirect_uris }), metrics = metrics.new() }
  for k, v in pairs(opts or {}) do base[k] = v end
  local by = {}
  for _, r in ipairs(app.new(base)) do by[r[1] .. " " .. r[2]] = r[3] end
  return by, base, logs
end

local function get(path, args, cookies)
  return { method = "GET", path = path, query = "", args = args or {}, headers = {}, cookies = cookies or {} }
end

function TestApp.test_connect_touches_no_store()
  local by, opts = routes_of{ store = raising_store() }
  for i = 1, 3 do
    local res = by["GET /connect"](get("/connect", i == 2 and { return_to = "/dash" } or nil))
    lu.assertEquals(res.status, 302)
    lu.assertStrContains(res.headers.Location, "http://127.0.0.1:9/oauth/authorize?response_type=code&client_id=ca_app_spec")
    lu.assertStrContains(res.headers["Set-Cookie"], "sc_bind=")
  end
  lu.assertEquals(opts.metrics.snapshot().counters.stripe_connect_connect_total, 3)
end

function TestApp.test_the_callback_sweeps_the_store()
  local store = store_mod.open("memory:")
  local expired = 0
  local expire = store.expire
  store.expire = function(self, now) expired = expired + 1; return expire(self, now) end
  local by = routes_of{ store = store }
  by["GET /connect"](get("/connect"))
  lu.assertEquals(expired, 0)
  lu.assertEquals(by["GET /oauth/callback"](get("/oauth/callback")).status, 403)
  lu.assertEquals(expired, 1)
  by["GET /oauth/callback"](get("/oauth/callback")) -- not again within EXPIRE_EVERY
  lu.assertEquals(expired, 1)
end

function TestApp.test_metrics_route()
  local store = store_mod.open("memory:")
  store.account_counts = function() return { connected = 2, disconnected = 1 } end
  local by, opts = routes_of{ store = store }
  by["GET /connect"](get("/connect"))
  by["GET /connect"](get("/connect"))
  by["GET /oauth/callback"](get("/oauth/callback"))
  local res = by["GET /metrics"](get("/metrics"))
  lu.assertEquals(res.status, 200)
  lu.assertEquals(res.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
  local text = res.body
  lu.assertStrContains(text, "# TYPE stripe_connect_connect_total counter\nstripe_connect_connect_total 2\n")
  lu.assertStrContains(text, "# TYPE stripe_connect_callbacks_total counter\n" ..
    'stripe_connect_callbacks_total{outcome="rejected",reason="missing_state"} 1\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_count{route="/connect"} 2\n')
  lu.assertStrContains(text, 'stripe_connect_request_duration_seconds_count{route="/oauth/callback"} 1\n')
  lu.assertStrContains(text, "# TYPE stripe_connect_accounts gauge\n" ..
    'stripe_connect_accounts{status="connected"} 2\nstripe_connect_accounts{status="disconnected"} 1\n')
  -- /metrics itself is measured once it has answered.
  local h = opts.metrics.snapshot().histograms[metrics.DURATION]
  lu.assertEquals(h['route="/metrics"'].count, 1)
end

function TestApp.test_pattern_routes_are_labelled_by_template()
  local store = store_mod.open("memory:")
  local cfg = config()
  cfg.admin_token = "admin-token-for-app-spec"
  local by, opts = routes_of{ store = store, config = cfg }
  local res = by["GET ^/admin/accounts/(acct_[%w_]+)$"]({ method = "GET", path = "/admin/accounts/acct_1",
    query = "", args = {}, headers = { authorization = "Bearer admin-token-for-app-spec" }, cookies = {},
    params = { "acct_1" } })
  lu.assertEquals(res.status, 404)
  local h = opts.metrics.snapshot().histograms[metrics.DURATION]
  lu.assertEquals(h['route="/admin/accounts/{id}"'].count, 1)
end

-- /healthz is liveness (no I/O: it answers with a store whose every method
-- raises); /ready asks the store and says 503 when it fails.
function TestApp.test_healthz_does_no_io_and_ready_checks_the_store()
  local by = routes_of{ store = raising_store() }
  local res = by["GET /healthz"](get("/healthz"))
  lu.assertEquals(res.status, 200)
  lu.assertEquals(res.body, "ok\n")
  local rows = {
    { "store answers", function() return true end, 200, "ready\n" },
    { "store fails", function() return nil, "disk I/O error" end, 503, "store unavailable\n" },
  }
  for _, row in ipairs(rows) do
    local store = store_mod.open("memory:")
    store.ping = row[2]
    local rby, _, logs = routes_of{ store = store }
    local r = rby["GET /ready"](get("/ready"))
    lu.assertEquals(r.status, row[3], row[1])
    lu.assertEquals(r.body, row[4], row[1])
    if row[3] == 503 then lu.assertStrContains(logs[#logs], "ready: store failed: disk I/O error") end
  end
end

-- /metrics: a # HELP and a # TYPE line for every family it shows, and the
-- declared series (metrics.FAMILIES) at 0 before anything happened.
function TestApp.test_metrics_help_type_and_declared_series()
  local store = store_mod.open("memory:")
  local by = routes_of{ store = store }
  local text = by["GET /metrics"](get("/metrics")).body
  local help, typ, names = {}, {}, {}
  for line in text:gmatch("[^\n]+") do
    local h = line:match("^# HELP (%S+) %S")
    local t = line:match("^# TYPE (%S+) %a+$")
    if h then help[h] = true elseif t then typ[t] = true
    else
      local name = assert(line:match("^([%a_:][%w_:]*)[{ ]"), line)
      names[(name:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", ""))] = true
    end
  end
  for name in pairs(names) do
    lu.assertTrue(help[name], "no # HELP for " .. name)
    lu.assertTrue(typ[name], "no # TYPE for " .. name)
  end
  for name, f in pairs(metrics.FAMILIES) do
    for _, series in ipairs(f.series or {}) do
      lu.assertStrContains(text, "\n" .. series .. " 0\n", false, name)
    end
  end
  lu.assertStrContains(text, '\nstripe_connect_deauthorizations_total{source="webhook"} 0\n')
  lu.assertStrContains(text, "# HELP stripe_connect_accounts ")
end

-- A path no route serves: the routes table's not_found, the styled page.
function TestApp.test_not_found_is_the_styled_page()
  local routes = app.new{ config = config(), store = store_mod.open("memory:"),
    policy = policy_mod.new(nil, { redirect_uris = config().redirect_uris }), metrics = metrics.new() }
  local res = routes.not_found(get("/nope"))
  lu.assertEquals(res.status, 404)
  lu.assertStrContains(res.body, "<h1>Page not found</h1>")
  lu.assertStrContains(res.headers["Content-Security-Policy"], "default-src 'none'")
end

-- A policy's render hook answers the flow's outcomes itself, here as JSON
-- for a single-page app: /connect still sets the binding cookie and no
-- answer is cached; a hook that answers nil leaves the library's page.
function TestApp.test_render_hook_answers_json()
  local cjson = require "cjson.safe"
  local cfg, seen = config(), {}
  local hooks = { render = function(outcome, req)
    seen[#seen + 1] = outcome.kind
    if req.path == "/connected" then return nil end
    return { status = outcome.status == 200 and 200 or (outcome.status >= 400 and outcome.status or 200),
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode{ kind = outcome.kind, reason = outcome.reason, location = outcome.location,
        account = outcome.account_id } }
  end }
  local oauth = { token = function() return { stripe_user_id = "acct_json", scope = "read_write",
    livemode = false, access_token = "sk_x", refresh_token = "rt_x" } end }
  local by = routes_of{ store = store_mod.open("memory:"), oauth = oauth,
    policy = policy_mod.new(hooks, { redirect_uris = cfg.redirect_uris }) }
  local res = by["GET /connect"](get("/connect"))
  lu.assertEquals(res.status, 200)
  lu.assertEquals(res.headers["Content-Type"], "application/json")
  lu.assertEquals(res.headers["Cache-Control"], "no-store")
  lu.assertEquals(res.headers["Referrer-Policy"], "no-referrer")
  local begun = assert(cjson.decode(res.body))
  lu.assertEquals(begun.kind, "authorize")
  lu.assertStrContains(begun.location, "http://127.0.0.1:9/oauth/authorize?")
  local cookie = assert(res.headers["Set-Cookie"]:match("^sc_bind=([^;]+)"))
  local st = begun.location:match("[?&]state=([^&]+)"):gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)

  local bad = by["GET /oauth/callback"](get("/oauth/callback", { state = "nonsense", code = "ac_1" }, { sc_bind = cookie }))
  lu.assertEquals(bad.status, 403)
  lu.assertEquals(assert(cjson.decode(bad.body)).reason, "malformed")

  local done = by["GET /oauth/callback"](get("/oauth/callback", { state = st, code = "ac_1" }, { sc_bind = cookie }))
  lu.assertEquals(done.status, 200)
  local body = assert(cjson.decode(done.body))
  lu.assertEquals(body.kind, "connected")
  lu.assertEquals(body.account, "acct_json")
  lu.assertEquals(body.location, "/connected?account=acct_json")
  lu.assertNotStrContains(done.body, "sk_x")

  local page = by["GET /connected"](get("/connected", { account = "acct_json" }, { sc_bind = cookie }))
  lu.assertEquals(page.status, 200)
  lu.assertStrContains(page.headers["Content-Type"], "text/html")
  lu.assertStrContains(page.body, "acct_json")
  lu.assertEquals(seen, { "authorize", "error", "connected", "account" })
end

return { TestApp = TestApp }
