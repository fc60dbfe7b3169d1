-- stripe_connect.policy — the platform's decisions, as optional Lua hooks
-- with safe defaults.  A policy file (POLICY=path) returns a table with any of:
--
--   scope(req)            -> "read_write" (default) | "read_only"
--   redirect_uri(req)     -> one of the configured REDIRECT_URIS (default the
--                            first); anything not in the allow-list is ignored
--   prefill(req)          -> stripe_user fields { email=, country=, url=, … } | nil
--   authorize_params(req) -> extra authorize parameters { stripe_landing=,
--                            always_prompt= } | nil
--   return_to(req)        -> a local path ("/dashboard"); default: the
--                            `return_to` query argument of /connect.  Only paths
--                            starting with one "/" (no "//", "\", scheme) are
--                            kept; anything else is ignored.
--   owner(req)            -> the platform's own id for the signed-in user (from
--                            its session), or nil.  Carried inside the signed
--                            state, stored with the account (`owner`), and
--                            checked again on the callback / onboarding return.
--   on_connected(account, req)        after the account is stored
--   on_denied(err, req)               the user declined (err.error, err.description)
--   on_error(err, req)                any other failed callback (err.reason, err.status)
--   on_deauthorized(account_id, source)   source "admin", "script" or "webhook"
--   on_event(event)                   other verified webhook events
--   render(outcome, req)  -> res | nil: the answer to a flow outcome (GET
--                            /connect, /oauth/callback, /connected; see
--                            stripe_connect.flow); nil: the library's pages
--
-- `req` is the request table of `serve` (doc/reference.md, Apps) (method, path, args,
-- headers, cookies, …).  Hooks run inside the request; one that raises is
-- logged and ignored (the flow's answer does not change), so a hook bug never
-- breaks a connection that Stripe already made.  The webhook endpoint is the
-- exception: it calls `p.webhook.on_event` / `p.webhook.on_deauthorized`,
-- which let the hook's error through, so the delivery answers 500 and the
-- event id is released for Stripe's retry (webhook.handler).
local util = require "stripe_connect.util"

local M = {}

M.HOOKS = {
  scope = true, redirect_uri = true, prefill = true, authorize_params = true, return_to = true,
  on_connected = true, on_denied = true, on_error = true, on_deauthorized = true, on_event = true,
  owner = true, render = true,
}

local SCOPES = { read_write = true, read_only = true }
local AUTHORIZE_PARAMS = { stripe_landing = true, always_prompt = true }

local function log_hook_error(log, name, err)
  log(string.format("policy hook %s failed: %s", name, tostring(err)))
end

-- The answers of the request hooks, checked: CHECK[name](answer, p, req)
-- -> what the flow uses (p: the policy, with p.log and p.allowed).
local CHECK = {}

function CHECK.scope(s, p)
  if s ~= nil and not SCOPES[s] then
    p.log("policy: scope hook answered an unknown scope; using read_write")
    s = nil
  end
  return s or "read_write"
end

function CHECK.redirect_uri(u, p)
  if u ~= nil and not p.allowed[u] then
    p.log("policy: redirect_uri hook answered a URI outside REDIRECT_URIS; using the first")
    u = nil
  end
  return u or p.redirect_uris[1]
end

function CHECK.prefill(t)
  if type(t) ~= "table" then return nil end
  local out = {}
  for k, v in pairs(t) do
    if type(k) == "string" and (type(v) == "string" or type(v) == "number" or type(v) == "boolean") then
      out[k] = v
    end
  end
  return next(out) and out or nil
end

function CHECK.authorize_params(t)
  if type(t) ~= "table" then return nil end
  local out = {}
  for k, v in pairs(t) do
    if AUTHORIZE_PARAMS[k] then out[k] = v end
  end
  return out
end

-- Without a hook: the return_to query argument of /connect.
function CHECK.return_to(r, p, req)
  if not p.hooks.return_to then r = req and req.args and req.args.return_to end
  if r ~= nil and util.is_local_path(r) then return r end
  return nil
end

-- owner -> a non-empty string of at most 256 bytes, or nil.
function CHECK.owner(o, p)
  if type(o) == "number" then o = string.format("%d", o) end
  if o ~= nil and (type(o) ~= "string" or o == "" or #o > 256) then
    p.log("policy: owner hook answered something other than a string of 1-256 bytes; ignoring it")
    o = nil
  end
  return o
end

local function check_hooks(hooks)
  assert(type(hooks) == "table", "policy.new: hooks must be a table")
  for k, v in pairs(hooks) do
    if not M.HOOKS[k] then error("policy: unknown hook '" .. tostring(k) .. "'", 3) end
    if type(v) ~= "function" then error("policy: hook '" .. k .. "' must be a function", 3) end
  end
end

-- The webhook's hooks: a hook that raises is logged and the error passes on
-- (the delivery answers 500 and Stripe retries it).
local function webhook_hooks(hooks, log)
  local w = {}
  for _, name in ipairs({ "on_deauthorized", "on_event" }) do
    w[name] = function(...)
      local fn = hooks[name]
      if not fn then return nil end
      local ok, res = pcall(fn, ...)
      if not ok then
        log_hook_error(log, name, res)
        error("policy hook " .. name .. " failed", 0)
      end
      return res
    end
  end
  return w
end

-- new(hooks, opts) -> policy
-- hooks: a table of the functions above (unknown names raise: typo safety).
-- opts.redirect_uris (the allow-list, required), opts.log (function(msg)).
function M.new(hooks, opts)
  hooks = hooks or {}
  opts = util.check_opts(opts, { redirect_uris = true, log = true }, "policy.new")
  check_hooks(hooks)
  local allow = opts.redirect_uris
  assert(type(allow) == "table" and allow[1], "policy.new: opts.redirect_uris must be a non-empty list")
  local allowed = {}
  for _, u in ipairs(allow) do allowed[u] = true end
  local log = opts.log or util.stderr_log

  -- call(name, ...) -> the hook's first result, or nil when absent or raising.
  local function call(name, ...)
    local fn = hooks[name]
    if not fn then return nil end
    local ok, res = pcall(fn, ...)
    if not ok then log_hook_error(log, name, res); return nil end
    return res
  end

  local p = { hooks = hooks, redirect_uris = allow, allowed = allowed, log = log }
  for name, check in pairs(CHECK) do
    p[name] = function(req) return check(call(name, req), p, req) end
  end
  for _, name in ipairs({ "on_connected", "on_denied", "on_error", "on_deauthorized", "on_event" }) do
    p[name] = function(...) return call(name, ...) end
  end
  -- render(outcome, req) -> the hook's response table, or nil (no hook, it
  -- raised, or it answered something else: the library's pages answer).
  function p.render(outcome, req)
    local res = call("render", outcome, req)
    if res ~= nil and type(res) ~= "table" then
      log("policy: render hook answered something other than a response table; using the library's page")
      res = nil
    end
    return res
  end
  p.webhook = webhook_hooks(hooks, log)
  return p
end

-- load(path) -> hooks table | nil, message: runs a policy file (a Lua chunk
-- returning a table of hooks).
function M.load(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, "policy: " .. tostring(err) end
  local ok, hooks = pcall(chunk)
  if not ok then return nil, "policy: " .. tostring(hooks) end
  if type(hooks) ~= "table" then return nil, "policy: " .. path .. " must return a table of hooks" end
  for k, v in pairs(hooks) do
    if not M.HOOKS[k] then return nil, "policy: " .. path .. ": unknown hook '" .. tostring(k) .. "'" end
    if type(v) ~= "function" then return nil, "policy: " .. path .. ": hook '" .. k .. "' must be a function" end
  end
  return hooks
end

return M
