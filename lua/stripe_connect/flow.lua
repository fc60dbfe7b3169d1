-- stripe_connect.flow — the Connect flow, transport-agnostic: requests are
-- plain tables (the request table `req` of `serve` (doc/reference.md, Apps)) and the answers are outcome
-- tables, which stripe_connect.pages (or the policy's render hook) turns
-- into a response, so the same code runs under `stripe-connect serve`, in
-- nginx, and in unit specs, and a platform can answer with its own pages.
--
--   begin(ctx, req)     GET /connect: mint a browser-bound state, 302 to Stripe
--   complete(ctx, req)  GET /oauth/callback: verify, consume once, exchange, store
--   connected(ctx, req) GET /connected: the success page, for its browser only
--
-- An outcome: { kind, status, reason?, location?, account_id?, set_cookie? }
--   kind "authorize"  302 to `location` (Stripe), `set_cookie` the binding cookie
--   kind "connected"  303 to `location` (return_to or /connected), `account_id`
--   kind "account"    200, the success page of `account_id`
--   kind "denied"     200, reason "access_denied"
--   kind "error"      `status` and `reason` (a key of M.STATUS)
--   deauthorize(ctx, id, source), refresh(ctx, id): account operations shared
--     by the admin routes and the ad hoc scripts
--
-- ctx = {
--   config  = stripe_connect.config table (keyring, state_ttl, secure,
--             client_id, secret_key, connect_base, stripe_timeout),
--   store   = a store (stripe_connect.store),
--   policy  = stripe_connect.policy.new(...),
--   oauth   = module with token/refresh/deauthorize/authorize_url (default
--             stripe_connect.oauth; specs may pass a fake),
--   now     = function() -> Unix seconds (default os.time),
--   sleep   = function(seconds) (default core.sleep: yields under serve),
--   log     = function(message) (default stderr),
--   metrics = a stripe_connect.metrics registry (default the process-wide one),
--   replay_wait = seconds a concurrent twin callback waits for the first
--             one's outcome (default STRIPE_TIMEOUT + 5),
--   authorize_head = set by begin: the authorize URL up to "&state=" when it
--             does not depend on the request (false otherwise); made from
--             config and policy on the first /connect, so changing those
--             afterwards needs a new ctx,
-- }
--
-- One-time state: the callback claims the state's nonce in the store
-- (atomically) before it spends the code, and records the outcome.  A replay
-- (reload, back button, prefetch) finds the outcome and answers it again; a
-- twin arriving while the first is still talking to Stripe polls for the
-- outcome and never calls the token endpoint itself.
local core = require "stripe_connect.core"
local state = require "stripe_connect.state"
local util = require "stripe_connect.util"

local M = {}

-- Seconds a consumed flow is remembered past its state's expiry: the
-- clocks of hosts sharing a store may differ by this much.  Hosts whose
-- clocks differ by STATE_TTL or more cannot complete flows anyway (one
-- host's states look expired to the other), so the margin is STATE_TTL,
-- at most 300 s.
local function flow_margin(ttl) return math.min(ttl, 300) end

-- Each failure reason's HTTP status (the words the page shows are the
-- pages module's: stripe_connect.pages.REASONS).
M.STATUS = {
  missing_state = 403, malformed = 403, unknown_key = 403, bad_signature = 403, expired = 403,
  no_binding = 403, other_browser = 403, other_owner = 403, access_denied = 200,
  stripe_refused = 400, missing_code = 400, invalid_grant = 400, oauth_error = 400,
  stripe_timeout = 504, stripe_unreachable = 502, stripe_error = 502, interrupted = 502,
  store_unavailable = 503, in_progress = 503,
  -- GET /connected
  invalid_link = 400, not_shown = 403,
}

local function defaults(ctx)
  ctx.now = ctx.now or os.time
  ctx.sleep = ctx.sleep or core.sleep
  ctx.log = ctx.log or util.stderr_log
  ctx.oauth = ctx.oauth or require("stripe_connect.oauth")
  ctx.metrics = ctx.metrics or require("stripe_connect.metrics")
  ctx.event = ctx.event or function() end
  return ctx
end

-- Counts one (process memory, never the store: see stripe_connect.metrics).
local function count_series(ctx, name)
  ctx.metrics.incr(name)
end

-- The series of each (outcome, reason), made once: outcome -> reason -> series.
local callback_series = setmetatable({}, { __index = function(t, outcome_label)
  local by_reason = setmetatable({}, { __index = function(r, reason)
    local series = string.format('stripe_connect_callbacks_total{outcome="%s",reason="%s"}', outcome_label, reason)
    r[reason] = series
    return series
  end })
  t[outcome_label] = by_reason
  return by_reason
end })

-- The log event of each callback outcome (stripe_connect.log).
local CALLBACK_EVENTS = {
  connected = { "connected", "info" }, denied = { "denied", "info" }, rejected = { "state_rejected", "warn" },
  error = { "token_error", "warn" }, replayed = { "callback_replayed", "info" },
  in_progress = { "callback_in_progress", "info" }, unverified = { "stripe_error_redirect", "warn" },
}

-- Counts the callback's outcome and writes its event line (fields: the
-- account, Stripe's error code; never the code or the state).
local function callback_metric(ctx, req, outcome_label, reason, fields)
  count_series(ctx, callback_series[outcome_label][reason or ""])
  local ev = CALLBACK_EVENTS[outcome_label] or { "callback", "info" }
  local name = ev[1]
  if outcome_label == "error" and reason == "store_unavailable" then name = "store_error" end
  fields = fields or {}
  fields.reason = reason
  ctx.event(name, req, fields, name == "store_error" and "error" or ev[2])
end

local function failure(reason)
  return { kind = reason == "access_denied" and "denied" or "error", status = M.STATUS[reason], reason = reason }
end

-- ------------------------------------------------------------------ begin

local SECURE, PLAIN = { secure = true }, { secure = false } -- binding_cookie's options

local function binding_of(ctx, req)
  local v = req.cookies and req.cookies[state.cookie_name(ctx.config.secure)]
  if state.valid_binding(v) then return v end
  return nil
end

-- The authorize URL built per request (oauth.authorize_url; prefill values
-- Stripe would ignore are dropped rather than failing the request).
-- The hooks run in the query's order: scope, redirect_uri, prefill,
-- authorize_params (those already asked are passed in: asked, prefill, extra).
local function authorize_url(ctx, req, token, asked, prefill, extra)
  local policy, cfg = ctx.policy, ctx.config
  local params = {
    client_id = cfg.client_id, scope = policy.scope(req), redirect_uri = policy.redirect_uri(req),
    state = token, connect_base = cfg.connect_base, invalid_prefill = "drop",
  }
  if not asked then prefill, extra = policy.prefill(req), policy.authorize_params(req) end
  params.stripe_user = prefill
  for k, v in pairs(extra or {}) do params[k] = v end
  local build = ctx.oauth.authorize_url or require("stripe_connect.oauth").authorize_url
  local url, dropped = build(params)
  if dropped and #dropped > 0 then
    ctx.log("connect: prefill fields dropped as invalid: " .. table.concat(dropped, ", "))
  end
  return url
end

-- The authorize URL up to and including "&state=" when nothing before the
-- state depends on the request (the policy has no scope or redirect_uri
-- hook, and ctx.oauth builds with the library's authorize_url): made once
-- per ctx, on its first /connect.  false: built per request.
local function authorize_head(ctx)
  local head = ctx.authorize_head
  if head ~= nil then return head end
  local oauth = require "stripe_connect.oauth"
  local policy, cfg = ctx.policy, ctx.config
  local hooks = policy.hooks
  head = false
  if (ctx.oauth.authorize_url == nil or ctx.oauth.authorize_url == oauth.authorize_url)
     and type(hooks) == "table" and hooks.scope == nil and hooks.redirect_uri == nil then
    head = oauth.authorize_url{ client_id = cfg.client_id, scope = policy.scope(),
      redirect_uri = policy.redirect_uri(), connect_base = cfg.connect_base } .. "&state="
  end
  ctx.authorize_head = head
  return head
end

-- begin(ctx, req) -> outcome { kind = "authorize", status = 302, location =
-- Stripe's authorize URL with a fresh state, set_cookie = the browser-binding
-- cookie (new or refreshed) }.
function M.begin(ctx, req)
  defaults(ctx)
  local cfg, policy = ctx.config, ctx.policy
  local binding = binding_of(ctx, req) or state.new_binding()
  local token = state.mint(cfg.keyring, { binding = binding, return_to = policy.return_to(req), now = ctx.now(),
    owner = policy.owner and policy.owner(req) or nil })
  -- The query's order is fixed (oauth.authorize_url): after the state come
  -- only the prefill and the extra parameters.
  local head, location = authorize_head(ctx), nil
  if head then
    local prefill, extra = policy.prefill(req), policy.authorize_params(req)
    if prefill == nil and (extra == nil or next(extra) == nil) then
      location = head .. core.url_encode(token)
    else
      location = authorize_url(ctx, req, token, true, prefill, extra)
    end
  else
    location = authorize_url(ctx, req, token, false)
  end
  count_series(ctx, "stripe_connect_connect_total")
  ctx.event("connect_started", req)
  return { kind = "authorize", status = 302, location = location,
    set_cookie = state.binding_cookie(binding, cfg.secure and SECURE or PLAIN) }
end

-- --------------------------------------------------------------- complete

local function first(v)
  if type(v) == "table" then return v[1] end
  return v
end

-- Maps a failed token call to a reason.
local function token_failure_reason(err)
  if type(err) ~= "table" then return "stripe_error" end
  if err.type == "oauth" then
    if err.error == "invalid_grant" then return "invalid_grant" end
    if (err.status or 400) >= 500 then return "stripe_error" end
    return "oauth_error"
  elseif err.type == "transport" then
    if err.code == "timeout" then return "stripe_timeout" end
    return "stripe_unreachable"
  end
  return "stripe_error"
end

-- Waits for the outcome of a flow another request is completing.
local function await_outcome(ctx, nonce)
  local wait = ctx.replay_wait or ((ctx.config.stripe_timeout or 30) + 5)
  local deadline = core.monotonic and (core.monotonic() + wait) or (os.time() + wait)
  local clock = core.monotonic or os.time
  local delay = 0.02
  while clock() < deadline do
    ctx.sleep(delay)
    delay = math.min(delay * 2, 0.25)
    local f = ctx.store:get_flow(nonce)
    if f and f.outcome then return f.outcome end
  end
  return nil
end

-- A flow claimed long ago that never got an outcome (its process died
-- between the claim and the answer): record "interrupted" so this and later
-- replays answer at once.  -> outcome | nil (still plausibly in flight).
local function abandoned(ctx, nonce)
  local f = ctx.store:get_flow(nonce)
  local limit = 2 * (ctx.config.stripe_timeout or 30) + 30
  if not f or f.outcome or not f.claimed_at or ctx.now() - f.claimed_at <= limit then return nil end
  local outcome = failure("interrupted")
  ctx.store:record_outcome(nonce, outcome)
  return outcome
end

-- The code exchange and storing the account; -> outcome.
local function exchange(ctx, req, code, claims)
  local cfg = ctx.config
  local res, err = ctx.oauth.token{
    secret_key = cfg.secret_key, code = code, connect_base = cfg.connect_base,
    timeout = cfg.stripe_timeout,
  }
  if not res then
    local reason = token_failure_reason(err)
    count_series(ctx, string.format('stripe_connect_token_calls_total{result="%s"}', reason))
    ctx.log(string.format("callback: token exchange failed (%s): %s", reason, tostring(err)))
    return failure(reason), err
  end
  if type(res.stripe_user_id) ~= "string" or not res.stripe_user_id:match("^acct_[%w]+$") then
    -- Not an account id we can store, address in admin URLs or link to.
    count_series(ctx, 'stripe_connect_token_calls_total{result="stripe_error"}')
    ctx.log("callback: token exchange answered without a valid stripe_user_id")
    return failure("stripe_error")
  end
  count_series(ctx, 'stripe_connect_token_calls_total{result="ok"}')
  local now = ctx.now()
  local account = {
    id = res.stripe_user_id, status = "connected", scope = res.scope, livemode = res.livemode == true,
    token_type = res.token_type, access_token = res.access_token, refresh_token = res.refresh_token,
    stripe_publishable_key = res.stripe_publishable_key, connected_at = now, updated_at = now,
    owner = claims.owner, completed_by = M.completed_by(claims.binding),
  }
  local ok, serr = ctx.store:put_account(account)
  if not ok then
    ctx.log("callback: storing account " .. account.id .. " failed: " .. tostring(serr))
    return failure("store_unavailable")
  end
  ctx.policy.on_connected(account, req)
  local location = claims.return_to or ("/connected?account=" .. core.url_encode(account.id))
  return { kind = "connected", status = 303, location = location, account_id = account.id }
end

-- completed_by(binding) -> what an account keeps of the browser that
-- connected it: a digest of its binding cookie (the cookie itself is a
-- secret, the digest is not reversible).  GET /connected compares it.
function M.completed_by(binding)
  if type(binding) ~= "string" then return nil end
  return core.base64url_encode(core.sha256("stripe-connect completed by\0" .. binding))
end

-- mark_completed_by(ctx, a, binding): records that this browser finished
-- account a (Account Links return), when another one is recorded.
function M.mark_completed_by(ctx, a, binding)
  local digest = M.completed_by(binding)
  if not digest or a.completed_by == digest then return end
  a.completed_by = digest
  local ok, err = ctx.store:put_account(a)
  if not ok then ctx.log("connected: recording the browser of " .. a.id .. " failed: " .. tostring(err)) end
end

-- connected(ctx, req) -> outcome for GET /connected?account=acct_….
-- The success page (kind "account", status 200, account_id) is shown only
-- to the browser that connected the account (its binding cookie's digest is
-- the account's completed_by) while the account is connected; anyone else
-- gets the same 403 (reason "not_shown") whatever the account's state, so
-- the page tells no one else whether an account is connected.  A missing,
-- repeated or malformed id is a 400 ("invalid_link").
function M.connected(ctx, req)
  defaults(ctx)
  local id = req.args and req.args.account
  if type(id) ~= "string" or #id > 255 or not id:match("^acct_[%w]+$") then
    return failure("invalid_link")
  end
  local a, err = ctx.store:get_account(id)
  if not a and err then
    ctx.log("connected: reading the account failed: " .. tostring(err))
    return failure("store_unavailable")
  end
  local digest = M.completed_by(binding_of(ctx, req))
  if a and a.status == "connected" and digest and type(a.completed_by) == "string"
     and core.equal(a.completed_by, digest) then
    return { kind = "account", status = 200, account_id = a.id }
  end
  return failure("not_shown")
end

-- The callback's state, verified -> claims | nil, outcome (the answer when
-- it does not verify; nothing is claimed then).
local function verified_state(ctx, req, args)
  local cfg, policy = ctx.config, ctx.policy
  local binding = binding_of(ctx, req)
  local claims, _, code = state.verify(cfg.keyring, first(args.state), {
    binding = binding or (req.cookies and req.cookies[state.cookie_name(cfg.secure)]),
    ttl = cfg.state_ttl, now = ctx.now(),
  })
  if claims then claims.binding = binding end
  if not claims and code == "missing" and first(args.error) then
    -- Stripe's error redirect may come without a state (doc/PROTOCOL.md §1):
    -- show what Stripe said; nothing is claimed and no hook runs, since
    -- anyone can request this URL.
    local reason = first(args.error) == "access_denied" and "access_denied" or "stripe_refused"
    callback_metric(ctx, req, "unverified", reason)
    return nil, failure(reason)
  end
  if claims and claims.account then claims, code = nil, "malformed" end -- an onboarding token
  if claims and claims.owner and (policy.owner and policy.owner(req)) ~= claims.owner then
    claims, code = nil, "other_owner" -- the state stays usable by its own user
  end
  if not claims then
    local reason = code == "missing" and "missing_state" or code
    callback_metric(ctx, req, "rejected", reason)
    policy.on_error({ reason = reason, status = 403 }, req)
    return nil, failure(reason)
  end
  return claims
end

-- Claims the state's flow in the store -> true | nil, outcome (the answer
-- of a flow claimed before: its recorded outcome, or a failure).
local function claimed(ctx, req, claims)
  -- Keep the flow record while this state verifies (STATE_TTL), plus the
  -- clock margin; the timer sweeps it after that (app.lua).  Raising
  -- STATE_TTL lets the states of already swept flows verify again in the
  -- same browser; their codes are single-use at Stripe (invalid_grant).
  local ttl = ctx.config.state_ttl or state.DEFAULT_TTL
  local keep_until = claims.issued_at + ttl + flow_margin(ttl)
  local ok, recorded = ctx.store:claim_flow(claims.nonce, keep_until)
  if ok == nil then
    ctx.log("callback: store failed to claim the flow: " .. tostring(recorded))
    callback_metric(ctx, req, "error", "store_unavailable")
    return nil, failure("store_unavailable")
  end
  if ok then return true end
  local outcome = recorded or abandoned(ctx, claims.nonce) or await_outcome(ctx, claims.nonce)
  if not outcome then
    callback_metric(ctx, req, "in_progress", "in_progress")
    return nil, failure("in_progress")
  end
  callback_metric(ctx, req, "replayed", outcome.reason or outcome.kind)
  return nil, outcome
end

-- Counts and logs a claimed flow's outcome and runs on_denied / on_error.
local function report(ctx, req, outcome, err)
  local fields = { account = outcome.account_id }
  if type(err) == "table" then fields.stripe_error = err.error or err.code end
  callback_metric(ctx, req, outcome.kind, outcome.reason, fields)
  if outcome.kind == "denied" then
    ctx.policy.on_denied(err, req)
  elseif outcome.kind == "error" then
    local e = { reason = outcome.reason, status = outcome.status }
    if type(err) == "table" then e.error, e.description, e.code = err.error, err.description, err.code end
    ctx.policy.on_error(e, req)
  end
end

-- complete(ctx, req) -> outcome for GET /oauth/callback: { kind =
-- "connected", status = 303, location, account_id } or { kind = "denied" |
-- "error", status, reason }.  The outcome is recorded with the flow, and a
-- replay of the same callback answers it again.
function M.complete(ctx, req)
  defaults(ctx)
  local args = req.args or {}
  local claims, answer = verified_state(ctx, req, args)
  if not claims then return answer end
  local ok, replayed = claimed(ctx, req, claims)
  if not ok then return replayed end

  local outcome, err
  local stripe_error, auth_code = first(args.error), first(args.code)
  if stripe_error then
    outcome = failure(stripe_error == "access_denied" and "access_denied" or "stripe_refused")
    err = { error = stripe_error, description = first(args.error_description) }
  elseif not auth_code or auth_code == "" then
    outcome = failure("missing_code")
  else
    outcome, err = exchange(ctx, req, auth_code, claims)
  end
  local rok, rerr = ctx.store:record_outcome(claims.nonce, outcome)
  if not rok then ctx.log("callback: recording the outcome failed: " .. tostring(rerr)) end
  report(ctx, req, outcome, err)
  return outcome
end

-- ------------------------------------------------------ account operations

local function op_error(status, reason, message, err)
  return { status = status, reason = reason, message = message, detail = err and tostring(err) or nil }
end

-- stripe_op_error(ctx, what, err) -> err for a failed Stripe call of an
-- account operation (`what`: "deauthorize call", "token refresh"), worded
-- for the operator (the admin API and the scripts answer the platform's
-- staff, not the end user): what Stripe said, or which setting to look at.
-- Secrets, codes and tokens are redacted.
local function stripe_op_error(ctx, what, err)
  local reason = token_failure_reason(err)
  local status = (reason == "invalid_grant" or reason == "oauth_error") and 400 or M.STATUS[reason]
  local cfg, e = ctx.config, type(err) == "table" and err or {}
  local msg
  if reason == "invalid_grant" then
    msg = "Stripe refused the " .. what .. " (invalid_grant): the account's authorization is no longer " ..
      "valid, most likely it was disconnected on Stripe's side"
  elseif reason == "oauth_error" then
    msg = string.format("Stripe refused the %s (%s%s); check STRIPE_SECRET_KEY and STRIPE_CLIENT_ID", what,
      tostring(e.error or "error"), type(e.description) == "string" and (": " .. e.description) or "")
  elseif reason == "stripe_timeout" then
    msg = string.format("Stripe did not answer the %s within STRIPE_TIMEOUT (%g s); try again", what,
      cfg.stripe_timeout or 30)
  elseif reason == "stripe_unreachable" then
    msg = string.format("could not reach Stripe at %s for the %s (%s); check STRIPE_CONNECT_BASE and the network",
      cfg.connect_base or "https://connect.stripe.com", what, tostring(e.code or e.message or err))
  else
    msg = string.format("Stripe answered the %s with an error (%s); try again", what,
      e.status and ("HTTP " .. tostring(e.status)) or tostring(e.message or err))
  end
  return op_error(status, reason, util.redact(msg, require("stripe_connect.config").secret_values(cfg)), err)
end

-- already_gone(err, id) -> true when a failed deauthorize means account id
-- is no longer connected to the platform.  Stripe answers `invalid_client`
-- for that, but also for a wrong or missing secret key, a client_id that is
-- not the platform's, a key whose mode differs from the client_id's, and an
-- account the platform controls (Stripe's OAuth reference, deauthorize
-- errors).  Only the description Stripe gives when the account is not
-- connected ("This application is not connected to stripe account acct_…,
-- or that account does not exist.", as in stripe-ruby's fixtures), naming
-- this account, counts; everything else leaves the account connected.
function M.already_gone(err, id)
  if type(err) ~= "table" or err.type ~= "oauth" or err.error ~= "invalid_client" then return false end
  local d = type(err.description) == "string" and err.description:lower() or ""
  return d:find("not connected to stripe account " .. id:lower(), 1, true) ~= nil
end

-- deauthorize(ctx, id, source, req) -> account | nil, err  (req: the admin
-- request, for the log line's request_id)
-- Calls Stripe's deauthorize, then marks the account disconnected and runs
-- on_deauthorized(id, source).  A refusal that means the account is not
-- connected any more (already_gone) also marks it disconnected; any other
-- error (a wrong key or client id included) leaves it as it is.
-- err = { status, reason, message, detail }.
function M.deauthorize(ctx, id, source, req)
  defaults(ctx)
  local cfg = ctx.config
  local a, gerr = ctx.store:get_account(id)
  if gerr then return nil, op_error(503, "store_unavailable", "the store is unavailable", gerr) end
  if not a then return nil, op_error(404, "not_found", "no account " .. id .. " in the store") end
  local res, err = ctx.oauth.deauthorize{
    secret_key = cfg.secret_key, client_id = cfg.client_id, stripe_user_id = id,
    connect_base = cfg.connect_base, timeout = cfg.stripe_timeout,
  }
  if not res and not M.already_gone(err, id) then
    if type(err) == "table" and err.type == "oauth" and err.error == "invalid_client" then
      ctx.log("deauthorize " .. id .. ": Stripe refused the platform's credentials (invalid_client: " ..
        tostring(err.description) .. "); the account stays connected: check STRIPE_SECRET_KEY and STRIPE_CLIENT_ID")
      return nil, op_error(502, "invalid_client", "Stripe refused the platform's key or client id; " ..
        "the account stays connected (check STRIPE_SECRET_KEY and STRIPE_CLIENT_ID)", err)
    end
    return nil, stripe_op_error(ctx, "deauthorize call", err)
  end
  local ok, serr = ctx.store:mark_disconnected(id, source or "admin")
  if not ok then return nil, op_error(503, "store_unavailable", "the store failed to update the account; check DATABASE and the log", serr) end
  count_series(ctx, string.format('stripe_connect_deauthorizations_total{source="%s"}', source or "admin"))
  ctx.event("disconnected", req, { account = id, source = source or "admin" })
  ctx.policy.on_deauthorized(id, source or "admin")
  return ctx.store:get_account(id)
end

-- refresh(ctx, id) -> account | nil, err: a new access token from the stored
-- refresh token; the account keeps the newest tokens, scope and livemode.
function M.refresh(ctx, id)
  defaults(ctx)
  local cfg = ctx.config
  local a, gerr = ctx.store:get_account(id)
  if gerr then return nil, op_error(503, "store_unavailable", "the store is unavailable", gerr) end
  if not a then return nil, op_error(404, "not_found", "no account " .. id .. " in the store") end
  if a.status ~= "connected" or not a.refresh_token then
    return nil, op_error(409, "no_refresh_token", "the account is not connected or has no refresh token")
  end
  local res, err = ctx.oauth.refresh{
    secret_key = cfg.secret_key, refresh_token = a.refresh_token, connect_base = cfg.connect_base,
    timeout = cfg.stripe_timeout,
  }
  if not res then return nil, stripe_op_error(ctx, "token refresh", err) end
  a.scope = res.scope or a.scope
  if res.livemode ~= nil then a.livemode = res.livemode == true end
  a.token_type = res.token_type or a.token_type
  a.access_token = res.access_token or a.access_token
  a.refresh_token = res.refresh_token or a.refresh_token
  a.stripe_publishable_key = res.stripe_publishable_key or a.stripe_publishable_key
  a.refreshed_at = ctx.now()
  a.updated_at = a.refreshed_at
  local ok, serr = ctx.store:put_account(a)
  if not ok then return nil, op_error(503, "store_unavailable", "the store failed to update the account; check DATABASE and the log", serr) end
  count_series(ctx, "stripe_connect_refreshes_total")
  return a
end

-- not_connected(ctx, id, source) — Stripe says the platform has no access to
-- account id any more (401/403 "not connected" to an API call): the deauthorize
-- webhook may have been missed.  An account the store lists as connected is
-- marked disconnected and on_deauthorized(id, source or "api") runs.
-- -> true when it was marked.
function M.not_connected(ctx, id, source)
  defaults(ctx)
  local a = ctx.store:get_account(id)
  if not a or a.status == "disconnected" then return false end
  local ok, serr = ctx.store:mark_disconnected(id, source or "api")
  if not ok then
    ctx.log("api: marking " .. id .. " disconnected failed: " .. tostring(serr))
    return false
  end
  ctx.log("api: Stripe answered that " .. id .. " is no longer connected; marked disconnected")
  count_series(ctx, string.format('stripe_connect_deauthorizations_total{source="%s"}', source or "api"))
  ctx.event("disconnected", nil, { account = id, source = source or "api" })
  ctx.policy.on_deauthorized(id, source or "api")
  return true
end

-- api(ctx) -> a stripe_connect.api client for the platform (its key, API
-- base and timeout; ctx.transport / ctx.sleep when given), wired so that an
-- account Stripe says is not connected is marked disconnected (not_connected).
-- Made once per ctx.
function M.api(ctx)
  defaults(ctx)
  if not ctx.api_client then
    local cfg = ctx.config
    ctx.api_client = require("stripe_connect.api").new{
      secret_key = cfg.secret_key, api_base = cfg.api_base, timeout = cfg.stripe_timeout,
      transport = ctx.transport, sleep = ctx.sleep,
      secrets = require("stripe_connect.config").secret_values(cfg),
      on_not_connected = function(id) M.not_connected(ctx, id, "api") end,
    }
  end
  return ctx.api_client
end

-- public_account(a) -> the account without tokens (for JSON and listings).
function M.public_account(a)
  return {
    id = a.id, status = a.status, scope = a.scope, livemode = a.livemode,
    connected_at = a.connected_at, updated_at = a.updated_at, disconnected_at = a.disconnected_at,
    disconnect_reason = a.disconnect_reason, refreshed_at = a.refreshed_at,
    has_refresh_token = a.refresh_token ~= nil, owner = a.owner, onboarding = a.onboarding,
    details_submitted = a.details_submitted, charges_enabled = a.charges_enabled,
  }
end

return M
