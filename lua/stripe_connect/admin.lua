-- stripe_connect.admin — the platform's admin routes (stripe_connect.app
-- adds them when ADMIN_TOKEN is set): the JSON API behind a Bearer token,
-- and the HTML list with its server-side sign-in session and CSRF field.
--
-- Each route's handler is a method of one Admin value (Admin:accounts,
-- Admin:login, …), and so are the checks they share (bearer auth, the
-- session cookie, the CSRF field, the sign-in throttle); M.routes lists
-- them.
local core = require "stripe_connect.core"
local flow = require "stripe_connect.flow"
local pages = require "stripe_connect.pages"
local util = require "stripe_connect.util"

local M = {}

-- Seconds an admin sign-in (the HTML page's session) lasts.
M.SESSION_TTL = 8 * 3600
-- Failed admin sign-ins allowed per client address in one window (seconds).
M.SIGNIN_FAILURES = 10
M.SIGNIN_WINDOW = 900

local json = util.json_response

local function html(status, body)
  return { status = status, headers = pages.headers({ ["Cache-Control"] = "no-store" }), body = body }
end

local function b64mac(key, what)
  return core.base64url_encode(core.hmac_sha256(key, what))
end

local function unauthorized()
  local res = json(401, { error = { reason = "unauthorized",
    message = "this admin route needs the header Authorization: Bearer <ADMIN_TOKEN>" } })
  res.headers["WWW-Authenticate"] = 'Bearer realm="stripe-connect admin"'
  return res
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

local function arg1(req, name)
  local v = req.args and req.args[name]
  if type(v) == "table" then v = v[1] end
  return type(v) == "string" and v ~= "" and v or nil
end

local STATUSES = { connected = true, disconnected = true, onboarding = true }

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

local function see_other(location, cookie)
  return { status = 303, headers = { Location = location, ["Cache-Control"] = "no-store", ["Set-Cookie"] = cookie },
    body = "" }
end

local function admin_problem(status, title, message)
  return html(status, pages.problem{ title = title, message = message, retry = false,
    link = { href = "/admin", text = "Back to the accounts" } })
end

local DONE = {
  disconnected = "%s was disconnected: Stripe revoked the platform's access and the account is marked disconnected.",
  already = "%s was already disconnected.",
}

-- An Admin: what the routes share (ctx as for flow, config.admin_token set).
local Admin = {}
Admin.__index = Admin

local function new_admin(ctx)
  local cfg = ctx.config
  return setmetatable({
    ctx = ctx, store = ctx.store, secure = cfg.secure,
    token = cfg.admin_token, token_digest = core.sha256(cfg.admin_token),
    now = ctx.now or os.time, log = ctx.log or function() end, event = ctx.event or function() end,
    cookie_name = cfg.secure and "__Secure-sc_admin" or "sc_admin",
  }, Admin)
end

-- ------------------------------------------------------------ checks

-- Bearer token, compared in constant time (digests: no length leak).
function Admin:bearer_ok(req)
  local h = req.headers and req.headers["authorization"]
  local given = type(h) == "string" and h:match("^[Bb]earer%s+(%S+)%s*$") or nil
  return given ~= nil and core.equal(core.sha256(given), self.token_digest)
end

-- Sessions (the HTML page's sign-in) live on the server, in the store's
-- flow rows (store:claim_flow / get_flow / record_outcome, so every store
-- and every worker and host sharing it see them): the cookie is a random
-- id, the row's key "admin-session:" .. MAC(ADMIN_TOKEN, id), so the store
-- never holds the cookie itself and a new ADMIN_TOKEN ends every session.
-- Signing out marks the row revoked; rows expire with SESSION_TTL.
function Admin:session_key(sid)
  return "admin-session:" .. b64mac(self.token, "stripe-connect admin session\0" .. sid)
end

-- new_session() -> the cookie value | nil (the store failed).
function Admin:new_session()
  local sid = core.base64url_encode(core.random_bytes(32))
  local ok, err = self.store:claim_flow(self:session_key(sid), self.now() + M.SESSION_TTL)
  if ok ~= true then
    self.log("admin: cannot record the session: " .. tostring(err or "key taken"))
    return nil
  end
  return sid
end

-- The request's session id when the store holds it live (cached on req).
function Admin:session_id(req)
  if req.admin_session ~= nil then return req.admin_session or nil end
  local v = req.cookies and req.cookies[self.cookie_name]
  local sid = type(v) == "string" and v:match("^[%w_-]+$") and #v == 43 and v or nil
  local live = false
  if sid then
    local f, err = self.store:get_flow(self:session_key(sid))
    if err then self.log("admin: session lookup failed: " .. tostring(err)) end
    live = f ~= nil and f.expires_at > self.now() and not (type(f.outcome) == "table" and f.outcome.revoked)
  end
  req.admin_session = live and sid or false
  return live and sid or nil
end

function Admin:session_ok(req) return self:session_id(req) ~= nil end

function Admin:cookie(value, max_age)
  return string.format("%s=%s; Path=/admin; Max-Age=%d; HttpOnly; SameSite=Strict%s",
    self.cookie_name, value, max_age, self.secure and "; Secure" or "")
end

-- The forms' CSRF field: a MAC of the session it belongs to.
function Admin:csrf_for(req)
  return b64mac(self.token, "stripe-connect admin csrf\0" .. (self:session_id(req) or ""))
end

function Admin:csrf_ok(req)
  local given = form_field(req, "csrf")
  return type(given) == "string" and core.equal(core.sha256(given), core.sha256(self:csrf_for(req)))
end

-- Failed sign-ins are counted per client address in flow rows too
-- ("admin-signin:" .. address .. window .. n): SIGNIN_FAILURES in one
-- SIGNIN_WINDOW and the form answers 429 with Retry-After until the window
-- ends.
-- signin_slot(req) -> the window's key prefix for this address, when the
-- window ends, and the seconds until then.
function Admin:signin_slot(req)
  local t = self.now()
  local window = math.floor(t / M.SIGNIN_WINDOW)
  local addr = type(req.remote_addr) == "string" and req.remote_addr or "unknown"
  return "admin-signin:" .. addr .. ":" .. window .. ":", (window + 1) * M.SIGNIN_WINDOW, (window + 1) * M.SIGNIN_WINDOW - t
end

-- throttled(req) -> whether the window's last slot is taken, the seconds left.
function Admin:throttled(req)
  local prefix, _, wait = self:signin_slot(req)
  local f = self.store:get_flow(prefix .. M.SIGNIN_FAILURES)
  return f ~= nil, wait
end

function Admin:count_failure(req)
  local prefix, until_t = self:signin_slot(req)
  for i = 1, M.SIGNIN_FAILURES do
    local ok, err = self.store:claim_flow(prefix .. i, until_t)
    if ok == true then return i end
    if ok == nil then self.log("admin: cannot count a failed sign-in: " .. tostring(err)); return nil end
  end
  return M.SIGNIN_FAILURES
end

-- list(owner, status) -> public accounts | nil, message (the store failed)
function Admin:list(owner, status)
  local store, accounts, err = self.store
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
    self.log("admin: list_accounts failed: " .. tostring(err))
    return nil, tostring(err)
  end
  local out = {}
  for _, a in ipairs(accounts) do
    if not status or a.status == status then out[#out + 1] = flow.public_account(a) end
  end
  return out
end

-- ------------------------------------------------------------ the JSON API

-- GET /admin/accounts[?owner=&status=]
function Admin:accounts(req)
  local status = arg1(req, "status")
  if status and not STATUSES[status] then
    return json(400, { error = { reason = "bad_status",
      message = "status must be connected, disconnected or onboarding" } })
  end
  local accounts, err = self:list(arg1(req, "owner"), status)
  if not accounts then
    return json(503, { error = { reason = "store_unavailable",
      message = "the store did not answer (" .. util.redact(err) .. "); check DATABASE and the log" } })
  end
  local res = json(200, {})
  res.body = util.json_data_list(accounts)
  return res
end

-- GET /admin/accounts/{id}
function Admin:account(req)
  local a, err = self.store:get_account(req.params[1])
  if err then
    self.log("admin: get_account failed: " .. tostring(err))
    return json(503, { error = { reason = "store_unavailable" } })
  end
  if not a then return json(404, { error = { reason = "not_found", message = "no account " .. req.params[1] .. " in the store" } }) end
  return json(200, { data = flow.public_account(a) })
end

-- POST /admin/accounts/{id}/refresh
function Admin:refresh(req)
  return op_response(flow.refresh(self.ctx, req.params[1]))
end

-- POST /admin/accounts/{id}/sync (read the account from Stripe)
function Admin:sync(req)
  return op_response(require("stripe_connect.onboard").sync(self.ctx, req.params[1], req))
end

-- POST /admin/accounts/{id}/deauthorize: the API's (Bearer token), or the
-- HTML page's confirmed Disconnect (session cookie + CSRF field).
function Admin:deauthorize(req)
  local id = req.params[1]
  if self:bearer_ok(req) then return op_response(flow.deauthorize(self.ctx, id, "admin", req)) end
  if self:session_ok(req) then return self:disconnect(req, id) end
  return unauthorized()
end

-- ------------------------------------------------------------ the HTML page

-- The HTML page's Disconnect: back to the list, saying what was done.
function Admin:disconnect(req, id)
  if not self:csrf_ok(req) then
    return admin_problem(403, "Forbidden", "The form has expired; reload the admin page.")
  end
  local before = self.store:get_account(id)
  local _, err = flow.deauthorize(self.ctx, id, "admin", req)
  if err then
    return admin_problem(err.status, "Could not disconnect " .. id, err.message)
  end
  local done = before and before.status == "disconnected" and "already" or "disconnected"
  return see_other("/admin?done=" .. done .. "&account=" .. id)
end

-- GET /admin/accounts/{id}/disconnect: the Disconnect button's confirmation
-- page (the HTML page runs no script).
function Admin:confirm_disconnect(req)
  if not self:session_ok(req) then return see_other("/admin") end
  local a = self.store:get_account(req.params[1])
  if not a then return admin_problem(404, "No such account", "There is no account " .. req.params[1] .. " in the store.") end
  return html(200, pages.admin_confirm(flow.public_account(a), self:csrf_for(req)))
end

-- GET /admin[?status=&owner=]: the list, or the sign-in form.
function Admin:page(req)
  if not (self:session_ok(req) or self:bearer_ok(req)) then
    return login_page(401, arg1(req, "signed_out") and "You are signed out." or nil)
  end
  local status = arg1(req, "status")
  if status and not STATUSES[status] then status = nil end
  local owner = arg1(req, "owner")
  local accounts = self:list(owner, status)
  if not accounts then return admin_problem(503, "Store unavailable",
    "The store did not answer; check DATABASE and the log, then reload.") end
  local notice
  local done, account = arg1(req, "done"), arg1(req, "account")
  if DONE[done] and account and account:match("^acct_[%w_]+$") then notice = DONE[done]:format(account) end
  return html(200, pages.admin(accounts, { csrf = self:session_ok(req) and self:csrf_for(req) or nil,
    status = status, owner = owner, notice = notice }))
end

-- POST /admin/login (the form's token field)
function Admin:login(req)
  local blocked, wait = self:throttled(req)
  if blocked then
    self.event("admin_signin_throttled", req, { remote_addr = req.remote_addr }, "warn")
    return login_page(429, string.format("Too many failed sign-ins from your address; try again in %d minutes.",
      math.ceil(wait / 60)), { ["Retry-After"] = string.format("%d", wait) })
  end
  local given = form_field(req, "token")
  if type(given) ~= "string" or not core.equal(core.sha256(given), self.token_digest) then
    local n = self:count_failure(req)
    self.event("admin_signin_failed", req, { remote_addr = req.remote_addr, failures = n, limit = M.SIGNIN_FAILURES }, "warn")
    return login_page(401, "That token is not right.")
  end
  local sid = self:new_session()
  if not sid then return admin_problem(503, "Store unavailable",
    "The session could not be recorded; check DATABASE and the log.") end
  self.event("admin_signed_in", req, { remote_addr = req.remote_addr })
  return see_other("/admin", self:cookie(sid, M.SESSION_TTL))
end

-- POST /admin/logout (the form's CSRF field)
function Admin:logout(req)
  local sid = self:session_id(req)
  if sid then
    if not self:csrf_ok(req) then
      return admin_problem(403, "Forbidden", "The form has expired; reload the admin page.")
    end
    local ok, err = self.store:record_outcome(self:session_key(sid), { revoked = true, revoked_at = self.now() })
    if not ok then
      self.log("admin: cannot revoke the session: " .. tostring(err))
      return admin_problem(503, "Store unavailable", "The session could not be ended; try again.")
    end
    self.event("admin_signed_out", req, { remote_addr = req.remote_addr })
  end
  return see_other("/admin?signed_out=1", self:cookie("", 0))
end

-- ------------------------------------------------------------ routes

-- routes(ctx) -> the admin routes (ctx as for flow, config.admin_token set):
-- each calls its Admin method; the guarded ones answer 401 without the
-- Bearer token.
function M.routes(ctx)
  local admin = new_admin(ctx)
  local function method(name) return function(req) return admin[name](admin, req) end end
  local function guarded(name)
    return function(req)
      if not admin:bearer_ok(req) then return unauthorized() end
      return admin[name](admin, req)
    end
  end
  return {
    { "GET", "/admin/accounts", guarded "accounts" },
    { "GET", "^/admin/accounts/(acct_[%w_]+)$", guarded "account" },
    { "GET", "^/admin/accounts/(acct_[%w_]+)/disconnect$", method "confirm_disconnect" },
    { "POST", "^/admin/accounts/(acct_[%w_]+)/deauthorize$", method "deauthorize" },
    { "POST", "^/admin/accounts/(acct_[%w_]+)/refresh$", guarded "refresh" },
    { "POST", "^/admin/accounts/(acct_[%w_]+)/sync$", guarded "sync" },
    { "GET", "/admin", method "page" },
    { "POST", "/admin/login", method "login" },
    { "POST", "/admin/logout", method "logout" },
  }
end

return M
