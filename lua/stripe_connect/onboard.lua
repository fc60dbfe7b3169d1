-- stripe_connect.onboard — Account Links onboarding (Stripe's recommended
-- path for new platforms), beside OAuth: the platform creates a Standard
-- account and sends its user to Stripe's hosted onboarding.
--
--   start(ctx, req)    POST /onboard: POST /v1/accounts (type=standard, the
--                      prefill hook's email/country), store it as
--                      `onboarding`, POST /v1/account_links
--                      (type=account_onboarding), 303 to the link
--   refresh(ctx, req)  GET /onboard/refresh?t=…: a fresh link (Stripe sends
--                      the user here when a link expired or was used)
--   finish(ctx, req)   GET /onboard/return?t=…: read the account
--                      (details_submitted, charges_enabled): `connected`, or
--                      still `onboarding` with a link to continue
--   sync(ctx, id)      read the account from Stripe and update the store
--   on_event(ctx, event)  `account.updated` webhooks update the status
--
-- ctx is flow's ctx (config, store, policy, log, metrics; the API client
-- comes from flow.api(ctx)).  The refresh and return URLs carry a signed
-- token (stripe_connect.state, v2: the account id and the owner) bound to the
-- browser that started, so no one finishes another user's onboarding; with
-- an `owner` hook the owner must still be the same user.
local core = require "stripe_connect.core"
local state = require "stripe_connect.state"
local flow = require "stripe_connect.flow"
local pages = require "stripe_connect.pages"
local util = require "stripe_connect.util"

local M = {}

-- Seconds the refresh / return URLs stay valid (onboarding may take a while).
M.TOKEN_TTL = 86400

local function headers(extra)
  local hd = { ["Cache-Control"] = "no-store", ["Referrer-Policy"] = "no-referrer" }
  for k, v in pairs(extra or {}) do hd[k] = v end
  return hd
end

local function redirect(location, cookie)
  return { status = 303, headers = headers{ Location = location, ["Set-Cookie"] = cookie,
    ["Content-Type"] = "text/plain; charset=utf-8" }, body = "" }
end

local function page(status, body)
  return { status = status, headers = pages.headers(headers()), body = body }
end

local function problem(status, title, message)
  return page(status, pages.problem{ title = title, message = message, retry = false })
end

local function count_step(ctx, step, result)
  ctx.metrics.incr(string.format('stripe_connect_onboarding_total{step="%s",result="%s"}', step, result))
end

-- A failed API call as a page (the reasons of the OAuth callback).
local function stripe_failure(ctx, step, what, err)
  local reason = "stripe_error"
  if type(err) == "table" and err.kind == "connection" then
    reason = err.code == "timeout" and "stripe_timeout" or "stripe_unreachable"
  end
  count_step(ctx, step, reason)
  ctx.log(string.format("onboard: %s failed (%s): %s", what, reason, tostring(err)))
  local r = pages.REASONS[reason]
  return problem(flow.STATUS[reason], r[1], r[2])
end

local function binding_of(ctx, req)
  local v = req.cookies and req.cookies[state.cookie_name(ctx.config.secure)]
  if state.valid_binding(v) then return v end
end

-- A link for account id, bound to binding (and owner): -> url | nil, page
local function new_link(ctx, id, binding, owner, step)
  local cfg = ctx.config
  local token = state.mint(cfg.keyring, { binding = binding, owner = owner, account = id, now = ctx.now() })
  local link, err = flow.api(ctx):post("/v1/account_links", {
    account = id, type = "account_onboarding",
    refresh_url = cfg.public_url .. "/onboard/refresh?t=" .. token,
    return_url = cfg.public_url .. "/onboard/return?t=" .. token,
  })
  if not link then return nil, stripe_failure(ctx, step, "creating an account link for " .. id, err) end
  if type(link.url) ~= "string" or not link.url:match("^https?://[^%s]+$") then
    return nil, stripe_failure(ctx, step, "the account link for " .. id, "the answer has no link URL")
  end
  return link.url
end

-- The account Stripe answered -> the stored account's new fields.
local function apply(ctx, a, obj, req)
  local was = a.status
  a.details_submitted = obj.details_submitted == true
  a.charges_enabled = obj.charges_enabled == true
  a.payouts_enabled = obj.payouts_enabled == true
  if obj.livemode ~= nil then a.livemode = obj.livemode == true end
  if a.onboarding and a.status ~= "disconnected" then -- an OAuth account's status is the connection's
    a.status = (a.details_submitted and a.charges_enabled) and "connected" or "onboarding"
  end
  a.updated_at = ctx.now()
  local ok, serr = ctx.store:put_account(a)
  if not ok then return nil, serr end
  if was ~= "connected" and a.status == "connected" then
    ctx.log("onboard: " .. a.id .. " finished onboarding")
    ctx.policy.on_connected(a, req)
  end
  return a
end

-- sync(ctx, id, req) -> account | nil, err ({ status, reason, message }):
-- reads the account (GET /v1/account with Stripe-Account) and updates the stored account.  A 403 "not
-- connected" marks it disconnected (flow.not_connected, through the client).
function M.sync(ctx, id, req)
  flow.api(ctx) -- flow's defaults (now, log, metrics) and the API client
  local a = ctx.store:get_account(id)
  if not a then return nil, { status = 404, reason = "not_found", message = "no such account" } end
  local obj, err = flow.api(ctx):account(id) -- GET /v1/account as the account: a 403 says it left
  if not obj then
    if type(err) == "table" and err.not_connected then
      return ctx.store:get_account(id)
    end
    return nil, { status = 502, reason = "stripe_error", message = "Stripe did not answer the account",
      detail = tostring(err) }
  end
  local updated, serr = apply(ctx, a, obj, req)
  if not updated then
    return nil, { status = 503, reason = "store_unavailable", message = "could not update the account", detail = serr }
  end
  return updated
end

-- start(ctx, req) -> res for POST /onboard.
function M.start(ctx, req)
  flow.api(ctx) -- flow's defaults (now, log, metrics) and the API client
  local cfg, policy, store = ctx.config, ctx.policy, ctx.store
  -- a form posted from another site: Sec-Fetch-Site where browsers send it,
  -- else Origin (our pages send no referrer, so our own form says "null")
  local hd = req.headers or {}
  local site, origin = hd["sec-fetch-site"], hd["origin"]
  if (site and site ~= "same-origin" and site ~= "none") or
     (not site and origin and origin ~= "null" and origin ~= cfg.public_url) then
    count_step(ctx, "start", "cross_origin")
    return problem(403, "This form was sent from another site", "Start again from our home page.")
  end
  local binding = binding_of(ctx, req) or state.new_binding()
  local owner = policy.owner(req)
  -- a user with an onboarding left unfinished continues it
  local id
  if owner and store.accounts_of then
    for _, a in ipairs(store:accounts_of(owner) or {}) do
      if a.status == "onboarding" and a.onboarding == "account_links" then id = a.id; break end
    end
  end
  if not id then
    local prefill = policy.prefill(req) or {}
    local params = { type = "standard" }
    if type(prefill.email) == "string" and prefill.email:match("^[^%s@]+@[^%s@]+$") then params.email = prefill.email end
    if type(prefill.country) == "string" and prefill.country:match("^%a%a$") then params.country = prefill.country end
    local acct, err = flow.api(ctx):post("/v1/accounts", params)
    if not acct then return stripe_failure(ctx, "start", "creating an account", err) end
    if type(acct.id) ~= "string" or not acct.id:match("^acct_[%w]+$") then
      return stripe_failure(ctx, "start", "creating an account", "the answer has no account id")
    end
    id = acct.id
    local now = ctx.now()
    local ok, serr = store:put_account{ id = id, status = "onboarding", onboarding = "account_links", owner = owner,
      livemode = acct.livemode == true, connected_at = now, updated_at = now,
      details_submitted = false, charges_enabled = false }
    if not ok then
      ctx.log("onboard: storing account " .. id .. " failed: " .. tostring(serr))
      count_step(ctx, "start", "store_unavailable")
      local r = pages.REASONS.store_unavailable
      return problem(flow.STATUS.store_unavailable, r[1], r[2])
    end
  end
  local url, failed = new_link(ctx, id, binding, owner, "start")
  if not url then return failed end
  count_step(ctx, "start", "ok")
  return redirect(url, state.binding_cookie(binding, { secure = cfg.secure }))
end

-- The token of /onboard/refresh and /onboard/return -> claims, binding | nil, page
local function verified(ctx, req, step)
  local cfg = ctx.config
  local t = req.args and req.args.t
  if type(t) == "table" then t = t[1] end
  local binding = binding_of(ctx, req)
  local claims, _, code = state.verify(cfg.keyring, t, { binding = binding, ttl = M.TOKEN_TTL, now = ctx.now() })
  if claims and not claims.account then claims, code = nil, "malformed" end
  if claims and claims.owner and ctx.policy.owner(req) ~= claims.owner then claims, code = nil, "other_owner" end
  if not claims then
    local reason = code == "missing" and "missing_state" or code
    count_step(ctx, step, reason)
    local r = pages.REASONS[reason] or pages.REASONS.malformed
    local title = r[1]:gsub("connection link", "setup link")
    return nil, problem(403, title, (r[2]:gsub("connection", "account setup")))
  end
  return claims, binding
end

local function continue_page(id, token)
  local h = util.html
  return pages.layout("Finish setting up your Stripe account", table.concat{
    '<div class="badge warn" aria-hidden="true">!</div>', "<h1>Your Stripe account is not ready yet</h1>",
    "<p>Stripe still needs some details for <code>", h(id), "</code> before it can accept payments.</p>",
    '<p><a class="btn" href="/onboard/refresh?t=', h(token), '">Continue setting up</a></p>',
  })
end

-- refresh(ctx, req) -> res for GET /onboard/refresh.
function M.refresh(ctx, req)
  flow.api(ctx) -- flow's defaults (now, log, metrics) and the API client
  local claims, binding = verified(ctx, req, "refresh")
  if not claims then return binding end
  local a = ctx.store:get_account(claims.account)
  if not a or a.status == "disconnected" then
    count_step(ctx, "refresh", "not_onboarding")
    return problem(409, "This account cannot be set up here", "Start again from our home page.")
  end
  if a.status == "connected" then
    flow.mark_completed_by(ctx, a, binding)
    return redirect("/connected?account=" .. core.url_encode(a.id))
  end
  local url, failed = new_link(ctx, a.id, binding, claims.owner, "refresh")
  if not url then return failed end
  count_step(ctx, "refresh", "ok")
  return redirect(url)
end

-- finish(ctx, req) -> res for GET /onboard/return.
function M.finish(ctx, req)
  flow.api(ctx) -- flow's defaults (now, log, metrics) and the API client
  local claims, failed = verified(ctx, req, "return")
  if not claims then return failed end
  local binding = failed -- verified answers claims, binding
  local a, err = M.sync(ctx, claims.account, req)
  if not a then
    count_step(ctx, "return", err.reason)
    ctx.log("onboard: return for " .. claims.account .. ": " .. tostring(err.detail or err.message))
    local reason = pages.REASONS[err.reason] and flow.STATUS[err.reason] and err.reason or "stripe_error"
    local r = pages.REASONS[reason]
    return problem(flow.STATUS[reason], r[1], r[2])
  end
  count_step(ctx, "return", a.status)
  if a.status == "connected" then
    flow.mark_completed_by(ctx, a, binding)
    return redirect("/connected?account=" .. core.url_encode(a.id))
  end
  if a.status == "disconnected" then
    return problem(409, "This account is no longer connected", "Start again from our home page.")
  end
  local t = req.args.t
  return page(200, continue_page(a.id, type(t) == "table" and t[1] or t))
end

-- on_event(ctx, event) — `account.updated` for an account set up here
-- updates its status (the user may finish onboarding without coming back).
function M.on_event(ctx, event)
  flow.api(ctx) -- flow's defaults (now, log, metrics) and the API client
  if type(event) ~= "table" or event.type ~= "account.updated" then return end
  local obj = type(event.data) == "table" and event.data.object or nil
  if type(obj) ~= "table" then return end
  local id = type(event.account) == "string" and event.account or obj.id
  if type(id) ~= "string" then return end
  local a = ctx.store:get_account(id)
  if not a or not a.onboarding then return end
  local ok, serr = apply(ctx, a, obj, nil)
  if not ok then error("onboard: updating " .. id .. " failed: " .. tostring(serr)) end
end

return M
