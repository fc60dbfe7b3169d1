-- stripe_connect.app — the platform's routes (serve contract 2), wired from
-- a config, a store and a policy.  scripts/platform.lua is a thin wrapper.
--
--   GET  /                          home page with the Connect button
--   GET  /connect[?return_to=/p]    302 to Stripe's authorize page (flow.begin)
--   GET  /oauth/callback            flow.complete
--   POST /onboard                   Account Links onboarding (stripe_connect.onboard;
--   GET  /onboard/refresh, /onboard/return   when ONBOARDING has account_links)
--   GET  /connected                 success page
--   GET  /healthz                   200 "ok": the process answers (no I/O)
--   GET  /ready                     200 "ready" when the store answers, else 503
--   GET  /metrics                   Prometheus text: the counters and the
--                                   per-route latency histogram (process
--                                   memory, stripe_connect.metrics; summed
--                                   over the workers of one `serve`) and the
--                                   accounts gauge (from the store)
--   POST /webhooks                  webhook.handler (when webhook secrets are set)
--   admin (only when config.admin_token is set; 404 otherwise):
--   GET  /admin/accounts            JSON {"data":[account…]}   Authorization: Bearer
--   GET  /admin/accounts/{id}       JSON {"data":account}
--   POST /admin/accounts/{id}/deauthorize, /admin/accounts/{id}/refresh,
--        /admin/accounts/{id}/sync (read the account from Stripe)
--   GET  /admin/accounts?owner=…    the accounts of one of the platform's users
--   GET  /admin/accounts?status=…   connected, disconnected or onboarding only
--   GET  /admin[?status=&owner=]    HTML list with Disconnect buttons (each asks
--   GET  /admin/accounts/{id}/disconnect   for confirmation first); sign in with
--   POST /admin/login               the token in a form (a server-side session:
--   POST /admin/logout              an HttpOnly SameSite=Strict cookie scoped to
--                                   /admin; sign-in failures are throttled)
--   any other path                  a 404 page like the others (routes.not_found)
-- Account JSON never contains tokens.
local core = require "stripe_connect.core"
local flow = require "stripe_connect.flow"
local metrics_mod = require "stripe_connect.metrics"
local pages = require "stripe_connect.pages"
local util = require "stripe_connect.util"

local M = {}

-- Seconds between store:expire sweeps where the host has no timer
-- (core.every: only `serve`), then run from the callback, per worker.
local EXPIRE_EVERY = 300

-- Seconds a webhook event id is kept: Stripe retries a delivery for up to
-- three days, plus an hour of margin.
M.EVENT_RETENTION = 72 * 3600 + 3600

-- sweep_every(cfg) -> seconds between the timer's sweeps: half the state
-- TTL, from 1 s to 60 s, so a flow row goes soon after it can matter.
function M.sweep_every(cfg)
  return math.max(1, math.min(60, math.floor((cfg.state_ttl or 1800) / 2)))
end

-- Seconds an admin sign-in (the HTML page's session) lasts.
M.SESSION_TTL = 8 * 3600
-- Failed admin sign-ins allowed per client address in one window (seconds).
M.SIGNIN_FAILURES = 10
M.SIGNIN_WINDOW = 900

local function html(status, body)
  return { status = status, headers = pages.headers({ ["Cache-Control"] = "no-store" }), body = body }
end

local json = util.json_response

local function text(status, body, ctype)
  return { status = status, headers = { ["Content-Type"] = ctype or "text/plain; charset=utf-8",
    ["Cache-Control"] = "no-store" }, body = body }
end

-- The accounts gauge lines (by_status: status -> n, from the store).
local function accounts_text(by_status)
  local out = { "# HELP stripe_connect_accounts Accounts in the store by status.", "# TYPE stripe_connect_accounts gauge" }
  for _, status in ipairs({ "connected", "disconnected", "onboarding" }) do
    out[#out + 1] = string.format('stripe_connect_accounts{status="%s"} %d', status, by_status[status] or 0)
  end
  return table.concat(out, "\n") .. "\n"
end

-- The route's label in the latency histogram: the path, or for a pattern
-- route the pattern without its anchors and with each capture as {id}.
local function route_label(path)
  if path:sub(1, 1) ~= "^" then return path end
  return (path:sub(2):gsub("%$$", ""):gsub("%b()", "{id}"))
end

-- The body limit of the routes that take a form (the admin's POSTs,
-- /onboard); the GET routes take none, /webhooks the webhook handler's.
M.FORM_MAX_BODY = 4096

-- The routes counted against a client address's token bucket (config
-- rate_limit), and which bucket: a user's Connect flow takes a few of
-- these; admin sign-in has a bucket of its own.
M.RATE_LIMITED = {
  ["GET /connect"] = "flow", ["GET /oauth/callback"] = "flow", ["POST /onboard"] = "flow",
  ["POST /admin/login"] = "admin",
}

-- limited(cfg, metrics, routes) -> routes, those in RATE_LIMITED wrapped in
-- the per-address token bucket (core.rate_take: process memory, shared by
-- the workers of one `serve`).  Past the bucket: 429 with Retry-After, and
-- the handler does not run.  A request without remote_addr is not counted.
local function limited(cfg, metrics, routes)
  local rl = cfg.rate_limit
  if not rl then return routes end
  for _, r in ipairs(routes) do
    local bucket = M.RATE_LIMITED[r[1] .. " " .. r[2]]
    if bucket then
      local handler, series = r[3], string.format('stripe_connect_rate_limited_total{bucket="%s"}', bucket)
      r[3] = function(req)
        local addr = req.remote_addr
        if type(addr) == "string" and addr ~= "" then
          local ok, retry_after = core.rate_take(bucket .. " " .. addr:sub(1, 100), rl.burst, rl.per_minute)
          if not ok then
            metrics.incr(series)
            local res = html(429, pages.problem{ title = "Too many requests",
              message = "Too many attempts from your network in a short time. Please wait a minute and try again.",
              retry = false })
            res.headers["Retry-After"] = tostring(retry_after)
            return res
          end
        end
        return handler(req)
      end
    end
  end
  return routes
end

-- timed(metrics, routes) -> routes with each handler measured into the
-- route's latency histogram (wall time from call to return, time spent
-- waiting on Stripe included; a handler that raises is not observed).
local function timed(metrics, routes)
  local clock = metrics.clock
  for _, r in ipairs(routes) do
    local handler, label = r[3], route_label(r[2])
    r[3] = function(req)
      local t0 = clock()
      local res = handler(req)
      metrics.observe(label, clock() - t0)
      return res
    end
  end
  return routes
end

-- new{ config=, store=, policy=, oauth=?, log=?, webhook=?, metrics=?, transport=?, sleep=? } -> routes
-- (webhook: the stripe_connect.webhook module, default required lazily;
-- metrics: a stripe_connect.metrics registry, default the process-wide one;
-- transport and sleep: for the API client and the twin callback's wait,
-- default core.http_request and core.sleep; nginx passes its own.)
-- The store is swept (store:expire: flows past their time, event ids past
-- EVENT_RETENTION) on a timer, once per process, every sweep_every(cfg)
-- seconds, off the request path (core.every under `serve`).  Without a host
-- timer (another host) the callback sweeps at most every EXPIRE_EVERY
-- seconds per worker.  /connect touches no store at all.
-- The ctx the flow and the other modules share (stripe_connect.flow's ctx),
-- with the app's event writer and redacting log.
local function platform_ctx(opts)
  local cfg, store, policy = opts.config, opts.store, opts.policy
  local secrets = require("stripe_connect.config").secret_values(cfg)
  -- Event lines (stripe_connect.log): connect_started, connected, denied,
  -- state_rejected, token_error, webhook_*, disconnected, store_error,
  -- admin_*; opts.event replaces the writer (specs).  Free-text lines go
  -- through it too once serve has a --log-format other than text.
  local events = opts.event or require("stripe_connect.log").new{ app = "platform", secrets = secrets }.event
  local plain = opts.log
  if not plain and (core.log_format == "logfmt" or core.log_format == "json") then
    plain = function(msg) events("log", nil, { message = msg }) end
  end
  local log = util.redacting_log(plain, secrets)
  local metrics = opts.metrics or metrics_mod
  local ctx = { config = cfg, store = store, policy = policy, oauth = opts.oauth, log = log,
    replay_wait = opts.replay_wait, metrics = metrics, transport = opts.transport, sleep = opts.sleep,
    event = events }
  return ctx
end

-- sweeper(ctx) -> the callback's sweep (a no-op where core.every arms the
-- timer; see new).
local function sweeper(ctx)
  local cfg, store, events = ctx.config, ctx.store, ctx.event
  local last_expire = 0

  local function expire()
    local ok, err = store:expire(os.time())
    if not ok then events("store_error", nil, { message = "expire: " .. tostring(err) }, "error") end
  end
  local sweep = function() end
  if core.every then
    core.every(M.sweep_every(cfg), expire) -- armed on one worker per process
  else
    sweep = function()
      local now = os.time()
      if now - last_expire >= EXPIRE_EVERY then
        last_expire = now
        expire()
      end
    end
  end
  return sweep
end

-- The routes every platform has.
local function base_routes(ctx, sweep)
  local cfg, store, policy, metrics, log, events = ctx.config, ctx.store, ctx.policy, ctx.metrics, ctx.log, ctx.event
  return {
    { "GET", "/", function()
        local offer = cfg.onboarding or { oauth = true }
        return { status = 200, body = pages.home(offer), headers = pages.home_headers({ ["Cache-Control"] = "no-store" },
          offer.account_links and M.link_origins(cfg) or nil) }
      end },
    { "GET", "/connect", function(req) return pages.respond(policy, flow.begin(ctx, req), req) end },
    { "GET", "/oauth/callback", function(req) sweep(); return pages.respond(policy, flow.complete(ctx, req), req) end },
    { "GET", "/connected", function(req) return pages.respond(policy, flow.connected(ctx, req), req) end },
    -- Liveness: the process answers; no I/O (a restart would not fix a store).
    { "GET", "/healthz", function() return text(200, "ok\n") end },
    -- Readiness: the store answers (store:ping), else 503 naming it.
    { "GET", "/ready", function()
        local ok, err = true, nil
        if store.ping then ok, err = store:ping() end
        if ok then return text(200, "ready\n") end
        log("ready: store failed: " .. tostring(err))
        events("store_error", nil, { message = "ping: " .. tostring(err) }, "error")
        return text(503, "store unavailable\n")
      end },
    { "GET", "/metrics", function()
        local by_status
        if store.account_counts then
          by_status = store:account_counts()
        else
          local accounts = store:list_accounts()
          if accounts then
            by_status = {}
            for _, a in ipairs(accounts) do by_status[a.status] = (by_status[a.status] or 0) + 1 end
          end
        end
        return text(200, metrics.text(metrics_mod.FAMILIES) .. (by_status and accounts_text(by_status) or ""),
          "text/plain; version=0.0.4; charset=utf-8")
      end },
  }
end

-- Appends the Account Links onboarding routes and the webhook route, as
-- configured.
local function optional_routes(routes, ctx, opts)
  local cfg, store, policy, metrics, log, events = ctx.config, ctx.store, ctx.policy, ctx.metrics, ctx.log, ctx.event
  if cfg.onboarding and cfg.onboarding.account_links then
    local onboard = require "stripe_connect.onboard"
    routes[#routes + 1] = { "POST", "/onboard", function(req) return onboard.start(ctx, req) end,
                            max_body = M.FORM_MAX_BODY }
    routes[#routes + 1] = { "GET", "/onboard/refresh", function(req) return onboard.refresh(ctx, req) end }
    routes[#routes + 1] = { "GET", "/onboard/return", function(req) return onboard.finish(ctx, req) end }
  end

  if cfg.webhook_secrets then
    local webhook = opts.webhook or require("stripe_connect.webhook")
    if webhook.handler then
      routes[#routes + 1] = { "POST", "/webhooks", webhook.handler{
        secrets = cfg.webhook_secrets, store = store, log = log, livemode = cfg.livemode,
        event_ttl = M.EVENT_RETENTION,
        -- A hook that raises answers 500 and releases the event id (the
        -- retry runs it again); policies without p.webhook keep swallowing.
        on_deauthorized = (policy.webhook or policy).on_deauthorized, metrics = metrics, event = events,
        on_event = function(event)
          require("stripe_connect.onboard").on_event(ctx, event) -- account.updated: onboarding status
          return (policy.webhook or policy).on_event(event)
        end,
      }, max_body = webhook.DEFAULT_MAX_BODY or M.FORM_MAX_BODY }
    else
      log("STRIPE_WEBHOOK_SECRETS is set but stripe_connect.webhook has no handler; /webhooks is off")
    end
  end
end

function M.new(opts)
  opts = util.check_opts(opts, { config = true, store = true, policy = true, oauth = true, log = true,
    webhook = true, replay_wait = true, metrics = true, transport = true, sleep = true, event = true }, "app.new")
  local cfg, store, policy = opts.config, opts.store, opts.policy
  assert(cfg and store and policy, "app.new: config, store and policy are required")
  local ok, serr = require("stripe_connect.store").check(store)
  if not ok then error("app.new: " .. serr, 2) end
  local ctx = platform_ctx(opts)
  local routes = base_routes(ctx, sweeper(ctx))
  optional_routes(routes, ctx, opts)
  local metrics = ctx.metrics
  if cfg.admin_token then
    for _, r in ipairs(M.admin_routes(ctx)) do
      if r[1] ~= "GET" then r.max_body = r.max_body or M.FORM_MAX_BODY end
      routes[#routes + 1] = r
    end
  end
  timed(metrics, limited(cfg, metrics, routes))
  -- A path no route serves: the styled 404 page (the router's not_found).
  routes.not_found = function() return html(404, pages.not_found()) end
  return routes
end

-- link_origins(cfg) -> "origin [origin]": where Account Links send the browser
-- (Stripe's connect host; the fake answers links on the API host).
function M.link_origins(cfg)
  local seen, out = {}, {}
  for _, base in ipairs({ cfg.connect_base or "https://connect.stripe.com", cfg.api_base }) do
    local origin = type(base) == "string" and base:match("^(https?://[^/]+)")
    if origin and not seen[origin] then seen[origin] = true; out[#out + 1] = origin end
  end
  return table.concat(out, " ")
end

-- policy_of(cfg) -> policy | nil, problem: the policy of the platform's
-- settings (the POLICY file, when set, loaded into stripe_connect.policy).
-- Shared by from_env and the nginx entry points (stripe_connect.ngx).
function M.policy_of(cfg)
  local config = require "stripe_connect.config"
  local policy_mod = require "stripe_connect.policy"
  local hooks
  if cfg.policy_path then
    local perr
    hooks, perr = policy_mod.load(cfg.policy_path)
    if not hooks then return nil, "POLICY: " .. perr end
  end
  local log = util.redacting_log(nil, config.secret_values(cfg))
  return policy_mod.new(hooks, { redirect_uris = cfg.redirect_uris, log = log })
end

-- from_env() -> { config, store, policy }: the platform's pieces from the
-- environment (config.load, DATABASE, POLICY).  Prints what to fix and exits
-- 2 when a setting is missing or invalid, the store cannot be opened or the
-- policy file does not load.  Used by scripts/platform.lua and the ad hoc
-- scripts, so they all share one configuration.
function M.from_env(getenv)
  local config = require "stripe_connect.config"
  local store_mod = require "stripe_connect.store"
  local function refuse(problem)
    io.stderr:write(config.format_problems({ problem }))
    io.stderr:flush()
    os.exit(2)
  end
  local cfg = config.load_or_exit(getenv)
  local store, err = store_mod.open(cfg.database)
  if not store then
    refuse("DATABASE: " .. tostring(err) .. " (check the path, and that its folder exists and is writable)")
  end
  local log = util.redacting_log(nil, config.secret_values(cfg))
  if cfg.token_keys then
    store = require("stripe_connect.tokens").wrap(store, cfg.token_keys, log)
  elseif (core.serve_worker or 1) == 1 then
    log("stripe-connect: TOKEN_KEYS is not set: the accounts' tokens are stored unencrypted (test mode only; " ..
      "a live key refuses to start without it)")
  end
  local policy, perr = M.policy_of(cfg)
  if not policy then refuse(perr) end
  return { config = cfg, store = store, policy = policy }
end

-- account_script(name, op) — the body of scripts/deauthorize.lua and
-- scripts/refresh.lua: checks `arg[1]` is an account id, loads the platform's
-- configuration, runs op(ctx, id) (flow.deauthorize / flow.refresh style:
-- account | nil, err) and prints the account line or the error; exit code
-- 0, 1 (the operation failed) or 2 (usage or configuration).
function M.account_script(name, op, describe)
  local id = arg and arg[1]
  if not id or not id:match("^acct_[%w_]+$") then
    io.stderr:write("usage: stripe-connect run scripts/" .. name .. ".lua acct_…\n")
    os.exit(2)
  end
  local a, err = op(M.from_env(), id)
  if not a then
    io.stderr:write(string.format("%s: %s: %s (%s)\n", name, id, err.message, err.reason))
    os.exit(1)
  end
  print(describe(a))
end

-- ------------------------------------------------------------------ admin

local function b64mac(key, what)
  return core.base64url_encode(core.hmac_sha256(key, what))
end

-- admin_routes(ctx) -> the admin routes (ctx as for flow, config.admin_token set).
--
-- Sessions (the HTML page's sign-in) live on the server, in the store's
-- flow rows (store:claim_flow / get_flow / record_outcome, so every store
-- and every worker and host sharing it see them): the cookie is a random
-- id, the row's key "admin-session:" .. MAC(ADMIN_TOKEN, id), so the store
-- never holds the cookie itself and a new ADMIN_TOKEN ends every session.
-- Signing out marks the row revoked; rows expire with SESSION_TTL.
-- Failed sign-ins are counted per client address in flow rows too
-- ("admin-signin:" .. address .. window .. n): SIGNIN_FAILURES in one
-- SIGNIN_WINDOW and the form answers 429 with Retry-After until the window
-- ends.
function M.admin_routes(ctx)
  local cfg, store = ctx.config, ctx.store
  local token = cfg.admin_token
  local token_digest = core.sha256(token)
  local now = ctx.now or os.time
  local log = ctx.log or function() end
  local event = ctx.event or function() end
  local cookie_name = cfg.secure and "__Secure-sc_admin" or "sc_admin"

  -- Bearer token, compared in constant time (digests: no length leak).
  local function bearer_ok(req)
    local h = req.headers and req.headers["authorization"]
    local given = type(h) == "string" and h:match("^[Bb]earer%s+(%S+)%s*$") or nil
    return given ~= nil and core.equal(core.sha256(given), token_digest)
  end

  local function session_key(sid)
    return "admin-session:" .. b64mac(token, "stripe-connect admin session\0" .. sid)
  end

  -- new_session() -> the cookie value | nil (the store failed).
  local function new_session()
    local sid = core.base64url_encode(core.random_bytes(32))
    local ok, err = store:claim_flow(session_key(sid), now() + M.SESSION_TTL)
    if ok ~= true then
      log("admin: cannot record the session: " .. tostring(err or "key taken"))
      return nil
    end
    return sid
  end

  -- The request's session id when the store holds it live (cached on req).
  local function session_id(req)
    if req.admin_session ~= nil then return req.admin_session or nil end
    local v = req.cookies and req.cookies[cookie_name]
    local sid = type(v) == "string" and v:match("^[%w_-]+$") and #v == 43 and v or nil
    local live = false
    if sid then
      local f, err = store:get_flow(session_key(sid))
      if err then log("admin: session lookup failed: " .. tostring(err)) end
      live = f ~= nil and f.expires_at > now() and not (type(f.outcome) == "table" and f.outcome.revoked)
    end
    req.admin_session = live and sid or false
    return live and sid or nil
  end

  local function session_ok(req) return session_id(req) ~= nil end

  -- The forms' CSRF field: a MAC of the session it belongs to.
  local function csrf_for(req)
    return b64mac(token, "stripe-connect admin csrf\0" .. (session_id(req) or ""))
  end

  local function unauthorized()
    local res = json(401, { error = { reason = "unauthorized",
      message = "this admin route needs the header Authorization: Bearer <ADMIN_TOKEN>" } })
    res.headers["WWW-Authenticate"] = 'Bearer realm="stripe-connect admin"'
    return res
  end

  local function guard(handler)
    return function(req)
      if not bearer_ok(req) then return unauthorized() end
      return handler(req)
    end
  end

  local function form_field(req, name)
    local parsed = core.parse_form(req.body or "", { max_length = 4096, max_fields = 16 })
    local v = parsed and parsed[name]
    if type(v) == "table" then v = v[1] end
    return v
  end

  local function csrf_ok(req)
    local given = form_field(req, "csrf")
    return type(given) == "string" and core.equal(core.sha256(given), core.sha256(csrf_for(req)))
  end

  local function op_response(a, err)
    if a then return json(200, { data = flow.public_account(a) }) end
    return json(err.status, { error = { reason = err.reason, message = err.message } })
  end

  local function arg1(req, name)
    local v = req.args and req.args[name]
    if type(v) == "table" then v = v[1] end
    return type(v) == "string" and v ~= "" and v or nil
  end

  local STATUSES = { connected = true, disconnected = true, onboarding = true }

  -- list(owner, status) -> public accounts | nil, message (the store failed)
  local function list(owner, status)
    local accounts, err
    if owner and store.accounts_of then
      accounts, err = store:accounts_of(owner)
    else
      accounts, err = store:list_accounts()
      if accounts and owner then
        local mine = {}
        for _, a in ipairs(accounts) do if a.owner == owner then mine[#mine + 1] = a end end
        accounts = mine
      end
    end
    if not accounts then
      log("admin: list_accounts failed: " .. tostring(err))
      return nil, tostring(err)
    end
    local out = {}
    for _, a in ipairs(accounts) do
      if not status or a.status == status then out[#out + 1] = flow.public_account(a) end
    end
    return out
  end

  local function login_page(status, note, headers)
    local body = '<h1>Admin</h1>' .. (note and ('<p class="notice">' .. util.html(note) .. "</p>") or "") ..
      '<form method="post" action="/admin/login"><p><label>Admin token ' ..
      '<input type="password" name="token" autocomplete="current-password" required></label></p>' ..
      '<p><button class="btn" type="submit">Sign in</button></p></form>' ..
      '<p class="muted"><a href="/">Home</a></p>'
    local res = html(status, pages.layout("Admin", body))
    for k, v in pairs(headers or {}) do res.headers[k] = v end
    return res
  end

  local function admin_cookie(value, max_age)
    return string.format("%s=%s; Path=/admin; Max-Age=%d; HttpOnly; SameSite=Strict%s",
      cookie_name, value, max_age, cfg.secure and "; Secure" or "")
  end

  local function see_other(location, cookie)
    return { status = 303, headers = { Location = location, ["Cache-Control"] = "no-store", ["Set-Cookie"] = cookie },
      body = "" }
  end

  local function admin_problem(status, title, message)
    return html(status, pages.problem{ title = title, message = message, retry = false,
      link = { href = "/admin", text = "Back to the accounts" } })
  end

  -- Sign-in throttle: the window, its key prefix for this address, and
  -- whether its last slot is taken.
  local function signin_slot(req)
    local t = now()
    local window = math.floor(t / M.SIGNIN_WINDOW)
    local addr = type(req.remote_addr) == "string" and req.remote_addr or "unknown"
    return "admin-signin:" .. addr .. ":" .. window .. ":", (window + 1) * M.SIGNIN_WINDOW, (window + 1) * M.SIGNIN_WINDOW - t
  end

  local function throttled(req)
    local prefix, _, wait = signin_slot(req)
    local f = store:get_flow(prefix .. M.SIGNIN_FAILURES)
    return f ~= nil, wait
  end

  local function count_failure(req)
    local prefix, until_t = signin_slot(req)
    for i = 1, M.SIGNIN_FAILURES do
      local ok, err = store:claim_flow(prefix .. i, until_t)
      if ok == true then return i end
      if ok == nil then log("admin: cannot count a failed sign-in: " .. tostring(err)); return nil end
    end
    return M.SIGNIN_FAILURES
  end

  local DONE = {
    disconnected = "%s was disconnected: Stripe revoked the platform's access and the account is marked disconnected.",
    already = "%s was already disconnected.",
  }

  return {
    { "GET", "/admin/accounts", guard(function(req)
        local status = arg1(req, "status")
        if status and not STATUSES[status] then
          return json(400, { error = { reason = "bad_status",
            message = "status must be connected, disconnected or onboarding" } })
        end
        local accounts, err = list(arg1(req, "owner"), status)
        if not accounts then
          return json(503, { error = { reason = "store_unavailable",
            message = "the store did not answer (" .. util.redact(err) .. "); check DATABASE and the log" } })
        end
        local res = json(200, {})
        res.body = util.json_data_list(accounts)
        return res
      end) },
    { "GET", "^/admin/accounts/(acct_[%w_]+)$", guard(function(req)
        local a, err = store:get_account(req.params[1])
        if err then
          ctx.log("admin: get_account failed: " .. tostring(err))
          return json(503, { error = { reason = "store_unavailable" } })
        end
        if not a then return json(404, { error = { reason = "not_found", message = "no account " .. req.params[1] .. " in the store" } }) end
        return json(200, { data = flow.public_account(a) })
      end) },
    -- The Disconnect button's confirmation page (the HTML page runs no script).
    { "GET", "^/admin/accounts/(acct_[%w_]+)/disconnect$", function(req)
        if not session_ok(req) then return see_other("/admin") end
        local a = store:get_account(req.params[1])
        if not a then return admin_problem(404, "No such account", "There is no account " .. req.params[1] .. " in the store.") end
        return html(200, pages.admin_confirm(flow.public_account(a), csrf_for(req)))
      end },
    { "POST", "^/admin/accounts/(acct_[%w_]+)/deauthorize$", function(req)
        local id = req.params[1]
        if bearer_ok(req) then return op_response(flow.deauthorize(ctx, id, "admin", req)) end
        -- The HTML page's Disconnect (confirmed): session cookie + CSRF field.
        if session_ok(req) then
          if not csrf_ok(req) then
            return admin_problem(403, "Forbidden", "The form has expired; reload the admin page.")
          end
          local before = store:get_account(id)
          local _, err = flow.deauthorize(ctx, id, "admin", req)
          if err then
            return admin_problem(err.status, "Could not disconnect " .. id, err.message)
          end
          local done = before and before.status == "disconnected" and "already" or "disconnected"
          return see_other("/admin?done=" .. done .. "&account=" .. id)
        end
        return unauthorized()
      end },
    { "POST", "^/admin/accounts/(acct_[%w_]+)/refresh$", guard(function(req)
        return op_response(flow.refresh(ctx, req.params[1]))
      end) },
    { "POST", "^/admin/accounts/(acct_[%w_]+)/sync$", guard(function(req)
        return op_response(require("stripe_connect.onboard").sync(ctx, req.params[1], req))
      end) },
    { "GET", "/admin", function(req)
        if not (session_ok(req) or bearer_ok(req)) then
          return login_page(401, arg1(req, "signed_out") and "You are signed out." or nil)
        end
        local status = arg1(req, "status")
        if status and not STATUSES[status] then status = nil end
        local owner = arg1(req, "owner")
        local accounts = list(owner, status)
        if not accounts then return admin_problem(503, "Store unavailable",
          "The store did not answer; check DATABASE and the log, then reload.") end
        local notice
        local done, account = arg1(req, "done"), arg1(req, "account")
        if DONE[done] and account and account:match("^acct_[%w_]+$") then notice = DONE[done]:format(account) end
        return html(200, pages.admin(accounts, { csrf = session_ok(req) and csrf_for(req) or nil,
          status = status, owner = owner, notice = notice }))
      end },
    { "POST", "/admin/login", function(req)
        local blocked, wait = throttled(req)
        if blocked then
          event("admin_signin_throttled", req, { remote_addr = req.remote_addr }, "warn")
          return login_page(429, string.format("Too many failed sign-ins from your address; try again in %d minutes.",
            math.ceil(wait / 60)), { ["Retry-After"] = string.format("%d", wait) })
        end
        local given = form_field(req, "token")
        if type(given) ~= "string" or not core.equal(core.sha256(given), token_digest) then
          local n = count_failure(req)
          event("admin_signin_failed", req, { remote_addr = req.remote_addr, failures = n, limit = M.SIGNIN_FAILURES }, "warn")
          return login_page(401, "That token is not right.")
        end
        local sid = new_session()
        if not sid then return admin_problem(503, "Store unavailable",
          "The session could not be recorded; check DATABASE and the log.") end
        event("admin_signed_in", req, { remote_addr = req.remote_addr })
        return see_other("/admin", admin_cookie(sid, M.SESSION_TTL))
      end },
    { "POST", "/admin/logout", function(req)
        local sid = session_id(req)
        if sid then
          if not csrf_ok(req) then
            return admin_problem(403, "Forbidden", "The form has expired; reload the admin page.")
          end
          local ok, err = store:record_outcome(session_key(sid), { revoked = true, revoked_at = now() })
          if not ok then
            log("admin: cannot revoke the session: " .. tostring(err))
            return admin_problem(503, "Store unavailable", "The session could not be ended; try again.")
          end
          event("admin_signed_out", req, { remote_addr = req.remote_addr })
        end
        return see_other("/admin?signed_out=1", admin_cookie("", 0))
      end },
  }
end

return M
