-- stripe_connect.app — the platform's routes (a routes table as doc/reference.md's
-- "stripe-connect serve" section, Apps, states it), wired from a config, a
-- store and a policy.  scripts/platform.lua is a thin wrapper (its
-- settings come from stripe_connect.cli.from_env).
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
--                                   (the admin routes: stripe_connect.admin)
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

local function html(status, body)
  return { status = status, headers = pages.headers({ ["Cache-Control"] = "no-store" }), body = body }
end


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

-- GET /: the home page with the Connect button.
local function home(cfg)
  local offer = cfg.onboarding or { oauth = true }
  return { status = 200, body = pages.home(offer), headers = pages.home_headers({ ["Cache-Control"] = "no-store" },
    offer.account_links and M.link_origins(cfg) or nil) }
end

-- GET /ready: readiness, the store answers (store:ping), else 503 naming it.
local function ready(ctx)
  local store = ctx.store
  local ok, err = true, nil
  if store.ping then ok, err = store:ping() end
  if ok then return text(200, "ready\n") end
  ctx.log("ready: store failed: " .. tostring(err))
  ctx.event("store_error", nil, { message = "ping: " .. tostring(err) }, "error")
  return text(503, "store unavailable\n")
end

-- GET /metrics: the registry's text and the accounts gauge (by status, from
-- the store; left out when the store does not answer).
local function metrics_page(ctx)
  local store, by_status = ctx.store, nil
  if store.account_counts then
    by_status = store:account_counts()
  else
    local accounts = store:list_accounts()
    if accounts then
      by_status = {}
      for _, a in ipairs(accounts) do by_status[a.status] = (by_status[a.status] or 0) + 1 end
    end
  end
  return text(200, ctx.metrics.text(metrics_mod.FAMILIES) .. (by_status and accounts_text(by_status) or ""),
    "text/plain; version=0.0.4; charset=utf-8")
end

-- The routes every platform has.
local function base_routes(ctx, sweep)
  local policy = ctx.policy
  return {
    { "GET", "/", function() return home(ctx.config) end },
    { "GET", "/connect", function(req) return pages.respond(policy, flow.begin(ctx, req), req) end },
    { "GET", "/oauth/callback", function(req) sweep(); return pages.respond(policy, flow.complete(ctx, req), req) end },
    { "GET", "/connected", function(req) return pages.respond(policy, flow.connected(ctx, req), req) end },
    -- Liveness: the process answers; no I/O (a restart would not fix a store).
    { "GET", "/healthz", function() return text(200, "ok\n") end },
    { "GET", "/ready", function() return ready(ctx) end },
    { "GET", "/metrics", function() return metrics_page(ctx) end },
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
    for _, r in ipairs(require("stripe_connect.admin").routes(ctx)) do
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
-- Shared by stripe_connect.cli's from_env and the nginx entry points
-- (stripe_connect.ngx).
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

return M
