-- stripe_connect.app — the platform's routes (serve contract 2), wired from
-- a config, a store and a policy.  scripts/platform.lua is a thin wrapper.
--
--   GET  /                          home page with the Connect button
--   GET  /connect[?return_to=/p]    302 to Stripe's authorize page (flow.begin)
--   GET  /oauth/callback            flow.complete
--   POST /onboard                   Account Links onboarding (stripe_connect.onboard;
--   GET  /onboard/refresh, /onboard/return   when ONBOARDING has account_links)
--   GET  /connected                 success page
--   GET  /healthz                   200 "ok" when the store answers, else 503
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
--   GET  /admin                     HTML list with Disconnect buttons; sign in with
--   POST /admin/login               the token in a form (sets an HttpOnly
--                                   SameSite=Strict cookie scoped to /admin)
-- Account JSON never contains tokens.
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
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

-- Seconds an admin sign-in (the HTML page's cookie) lasts.
M.SESSION_TTL = 8 * 3600

local function html(status, body)
  return { status = status, headers = pages.headers({ ["Cache-Control"] = "no-store" }), body = body }
end

local function json(status, value)
  return { status = status,
    headers = { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" },
    body = assert(cjson.encode(value)) }
end

local function text(status, body, ctype)
  return { status = status, headers = { ["Content-Type"] = ctype or "text/plain; charset=utf-8",
    ["Cache-Control"] = "no-store" }, body = body }
end

-- The accounts gauge lines (by_status: status -> n, from the store).
local function accounts_text(by_status)
  local out = { "# TYPE stripe_connect_accounts gauge" }
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
function M.new(opts)
  opts = util.check_opts(opts, { config = true, store = true, policy = true, oauth = true, log = true,
    webhook = true, replay_wait = true, metrics = true, transport = true, sleep = true }, "app.new")
  local cfg, store, policy = opts.config, opts.store, opts.policy
  assert(cfg and store and policy, "app.new: config, store and policy are required")
  local ok, serr = require("stripe_connect.store").check(store)
  if not ok then error("app.new: " .. serr, 2) end
  local log = util.redacting_log(opts.log, require("stripe_connect.config").secret_values(cfg))
  local metrics = opts.metrics or metrics_mod
  local ctx = { config = cfg, store = store, policy = policy, oauth = opts.oauth, log = log,
    replay_wait = opts.replay_wait, metrics = metrics, transport = opts.transport, sleep = opts.sleep }
  local last_expire = 0

  local function expire()
    local ok, err = store:expire(os.time())
    if not ok then log("store expire failed: " .. tostring(err)) end
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

  local routes = {
    { "GET", "/", function()
        local offer = cfg.onboarding or { oauth = true }
        return { status = 200, body = pages.home(offer), headers = pages.home_headers({ ["Cache-Control"] = "no-store" },
          offer.account_links and M.link_origins(cfg) or nil) }
      end },
    { "GET", "/connect", function(req) return flow.begin(ctx, req) end },
    { "GET", "/oauth/callback", function(req) sweep(); return flow.complete(ctx, req) end },
    { "GET", "/connected", function(req) return flow.connected_page(ctx, req) end },
    { "GET", "/healthz", function()
        local ok, err = true, nil
        if store.ping then ok, err = store:ping() end
        if ok then return text(200, "ok\n") end
        log("healthz: store failed: " .. tostring(err))
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
        return text(200, metrics.text() .. (by_status and accounts_text(by_status) or ""),
          "text/plain; version=0.0.4; charset=utf-8")
      end },
  }

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
        on_deauthorized = (policy.webhook or policy).on_deauthorized, metrics = metrics,
        on_event = function(event)
          require("stripe_connect.onboard").on_event(ctx, event) -- account.updated: onboarding status
          return (policy.webhook or policy).on_event(event)
        end,
      }, max_body = webhook.DEFAULT_MAX_BODY or M.FORM_MAX_BODY }
    else
      log("STRIPE_WEBHOOK_SECRETS is set but stripe_connect.webhook has no handler; /webhooks is off")
    end
  end

  if cfg.admin_token then
    for _, r in ipairs(M.admin_routes(ctx)) do
      if r[1] ~= "GET" then r.max_body = r.max_body or M.FORM_MAX_BODY end
      routes[#routes + 1] = r
    end
  end
  return timed(metrics, limited(cfg, metrics, routes))
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
function M.admin_routes(ctx)
  local cfg, store = ctx.config, ctx.store
  local token = cfg.admin_token
  local token_digest = core.sha256(token)
  local now = ctx.now or os.time
  local cookie_name = cfg.secure and "__Secure-sc_admin" or "sc_admin"

  -- Bearer token, compared in constant time (digests: no length leak).
  local function bearer_ok(req)
    local h = req.headers and req.headers["authorization"]
    local given = type(h) == "string" and h:match("^[Bb]earer%s+(%S+)%s*$") or nil
    return given ~= nil and core.equal(core.sha256(given), token_digest)
  end

  -- The sign-in cookie is "<issued-at>.<MAC of it under the token>": it
  -- expires on the server too (SESSION_TTL), not only in the browser.
  local function new_session()
    local iat = string.format("%d", now())
    return iat .. "." .. b64mac(token, "stripe-connect admin session\0" .. iat)
  end

  local function session_ok(req)
    local v = req.cookies and req.cookies[cookie_name]
    local iat, mac = (type(v) == "string" and v or ""):match("^(%d+)%.([%w_-]+)$")
    local t = tonumber(iat)
    if not t or t > now() + 300 or now() - t >= M.SESSION_TTL then return false end
    return core.equal(core.sha256(mac), core.sha256(b64mac(token, "stripe-connect admin session\0" .. iat)))
  end

  -- The Disconnect form's CSRF field: a MAC of the session it belongs to.
  local function csrf_for(req)
    local v = req.cookies and req.cookies[cookie_name]
    return b64mac(token, "stripe-connect admin csrf\0" .. (type(v) == "string" and v or ""))
  end

  local function unauthorized()
    local res = json(401, { error = { reason = "unauthorized", message = "send Authorization: Bearer <ADMIN_TOKEN>" } })
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

  local function op_response(a, err)
    if a then return json(200, { data = flow.public_account(a) }) end
    return json(err.status, { error = { reason = err.reason, message = err.message } })
  end

  local function list(owner)
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
      ctx.log("admin: list_accounts failed: " .. tostring(err))
      return nil
    end
    for i, a in ipairs(accounts) do accounts[i] = flow.public_account(a) end
    return accounts
  end

  local function login_page(status, note)
    local body = '<h1>Admin</h1>' .. (note and ('<p class="muted">' .. util.html(note) .. "</p>") or "") ..
      '<form method="post" action="/admin/login"><p><label>Admin token ' ..
      '<input type="password" name="token" autocomplete="current-password" required></label></p>' ..
      '<p><button class="btn" type="submit">Sign in</button></p></form>'
    return html(status, pages.layout("Admin", body))
  end

  local function admin_cookie(value, max_age)
    return string.format("%s=%s; Path=/admin; Max-Age=%d; HttpOnly; SameSite=Strict%s",
      cookie_name, value, max_age, cfg.secure and "; Secure" or "")
  end

  return {
    { "GET", "/admin/accounts", guard(function(req)
        local owner = req.args and req.args.owner
        if type(owner) == "table" then owner = owner[1] end
        local accounts = list(owner ~= "" and owner or nil)
        if not accounts then return json(503, { error = { reason = "store_unavailable" } }) end
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
        if not a then return json(404, { error = { reason = "not_found", message = "no such account" } }) end
        return json(200, { data = flow.public_account(a) })
      end) },
    { "POST", "^/admin/accounts/(acct_[%w_]+)/deauthorize$", function(req)
        local id = req.params[1]
        if bearer_ok(req) then return op_response(flow.deauthorize(ctx, id, "admin")) end
        -- The HTML page's Disconnect button: session cookie + CSRF field.
        if session_ok(req) then
          local given = form_field(req, "csrf")
          if type(given) ~= "string" or not core.equal(core.sha256(given), core.sha256(csrf_for(req))) then
            return html(403, pages.problem{ title = "Forbidden", message = "The form has expired; reload the admin page.", retry = false })
          end
          local _, err = flow.deauthorize(ctx, id, "admin")
          if err then
            return html(err.status, pages.problem{ title = "Could not disconnect", message = err.message, retry = false })
          end
          return { status = 303, headers = { Location = "/admin", ["Cache-Control"] = "no-store" }, body = "" }
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
        if not (session_ok(req) or bearer_ok(req)) then return login_page(401) end
        local owner = req.args and req.args.owner
        local accounts = list(type(owner) == "string" and owner ~= "" and owner or nil)
        if not accounts then return html(503, pages.problem{ title = "Store unavailable", message = "Try again.", retry = false }) end
        return html(200, pages.admin(accounts, session_ok(req) and csrf_for(req) or nil))
      end },
    { "POST", "/admin/login", function(req)
        local given = form_field(req, "token")
        if type(given) ~= "string" or not core.equal(core.sha256(given), token_digest) then
          return login_page(401, "That token is not right.")
        end
        return { status = 303, headers = { Location = "/admin", ["Cache-Control"] = "no-store",
          ["Set-Cookie"] = admin_cookie(new_session(), M.SESSION_TTL) }, body = "" }
      end },
  }
end

return M
