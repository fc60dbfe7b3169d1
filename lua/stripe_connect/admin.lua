-- stripe_connect.admin — the platform's admin routes (stripe_connect.app
-- adds them when ADMIN_TOKEN is set): the JSON API behind a Bearer token,
-- and the HTML list with its server-side sign-in session and CSRF field.
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

-- routes(ctx) -> the admin routes (ctx as for flow, config.admin_token set).
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
function M.routes(ctx)
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
