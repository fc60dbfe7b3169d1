-- stripe_connect.fake.oauth — the fake's OAuth endpoints (doc/PROTOCOL.md
-- §1–3): GET /oauth/authorize (the consent page), POST
-- /oauth/authorize/decide, POST /oauth/token (authorization_code and
-- refresh_token) and POST /oauth/deauthorize, with the platform-key check
-- and the /__fake/requests log (Fake:recorded).  Methods of the fake,
-- mixed in by stripe_connect.fake.
--
-- Descriptions Stripe documents are used verbatim; the others (wrong mode,
-- expired code, wider scope) are the fake's own wording.  Statuses follow the
-- SDK fixtures: 400, and 401 for invalid_client.  The secret key is never
-- recorded or echoed; codes are echoed only where Stripe does ("Authorization
-- code does not exist: …") and in the /__fake/requests log.
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"
local http = require "stripe_connect.fake.http"

local json, oauth_error, single = http.json, http.oauth_error, http.single
local random_id, mode_name = http.random_id, http.mode_name

local Fake = {}

local SCOPE_RANK = { read_only = 1, read_write = 2 }
local DENIED = "The user denied your request"
local NO_AUTH = "No authentication was provided. Send your secret API key using the " ..
  "Authorization header, or as a client_secret POST parameter."
local REUSED = "This authorization code has already been used. All tokens issued with " ..
  "this code have been revoked."

-- Checks the platform key: answers its livemode, or nil and a 401 answer.
function Fake:authenticate(req, form)
  local key, method = http.presented_key(req, form)
  if not key or key == "" then return nil, oauth_error(401, "invalid_client", NO_AUTH), method end
  for _, k in ipairs(self.keys) do
    if core.equal(key, k.key) then return k.livemode, nil, method end
  end
  return nil, oauth_error(401, "invalid_client", "Invalid API key provided."), method
end

-- Wraps an OAuth endpoint: injected faults, the form, the platform key
-- (401 before inner runs), and the requests log entry `rec` — path, auth
-- method, the `logged` form fields, the answered status, and whatever inner
-- adds.  inner(self, form, key_livemode, rec) -> answer.
function Fake:recorded(path, inner, logged)
  return function(req)
    local rec = { path = path }
    local answer = self:fault(path)
    local form = not answer and http.form_of(req)
    if answer then
      rec.fault = true
    elseif not form then
      answer = oauth_error(400, "invalid_request", "Malformed form body.")
    else
      for _, name in ipairs(logged) do
        local v = single(form, name)
        rec[name] = type(v) == "string" and v or nil
      end
      local key_livemode, denied, method = self:authenticate(req, form)
      rec.auth = method
      answer = denied or inner(self, form, key_livemode, rec)
    end
    rec.status = answer.status
    self.requests[#self.requests + 1] = rec
    return answer
  end
end

-- --------------------------------------------------- authorize (§1)
-- Validates the authorize parameters; answers the normalized values or nil
-- and the JSON error answer (never a redirect).
function Fake:check_authorize(params)
  local state, err = single(params, "state")
  if err then return nil, oauth_error(400, "invalid_request", err) end
  local v = {}
  for _, name in ipairs{ "client_id", "response_type", "scope", "redirect_uri" } do
    v[name], err = single(params, name)
    if err then return nil, oauth_error(400, "invalid_request", err, state) end
  end
  v.state = state
  if not v.response_type or v.response_type == "" then
    return nil, oauth_error(400, "invalid_request", "Missing response_type parameter.", state)
  elseif v.response_type ~= "code" then
    return nil, oauth_error(400, "unsupported_response_type", "Only 'code' response_type is supported, but '" ..
      v.response_type .. "' was provided", state)
  elseif not v.client_id or v.client_id == "" then
    return nil, oauth_error(400, "invalid_request", "Missing client_id parameter.", state)
  elseif v.client_id ~= self.config.client_id then
    return nil, oauth_error(400, "invalid_request", "No application matches the client_id " .. v.client_id .. ".", state)
  end
  v.scope = (v.scope == nil or v.scope == "") and "read_only" or v.scope
  if not SCOPE_RANK[v.scope] then
    return nil, oauth_error(400, "invalid_scope", "Invalid scope provided: " .. v.scope .. ".", state)
  end
  if v.redirect_uri == nil or v.redirect_uri == "" then
    v.redirect_uri = self.config.redirect_uris[1]
    if not v.redirect_uri then
      return nil, oauth_error(400, "invalid_redirect_uri", "This application has no redirect_uri configured.", state)
    end
  else
    local known = false
    for _, uri in ipairs(self.config.redirect_uris) do known = known or uri == v.redirect_uri end
    if not known then
      return nil, oauth_error(400, "invalid_redirect_uri", "Invalid redirect URI '" .. v.redirect_uri ..
        "'. Ensure this uri exactly matches one of the uris specified in your application settings", state)
    end
  end
  if self.livemode and not v.redirect_uri:match("^https://") then
    return nil, oauth_error(400, "invalid_redirect_uri", "The live mode redirect_uri must use HTTPS.", state)
  end
  return v
end

local function values_of(v)
  return type(v) == "table" and v or { v }
end

local SCOPE_TEXT = {
  read_write = "Read and write: view and change your account's data, and create charges on your behalf.",
  read_only = "Read only: view your account's data (extensions only).",
}

-- The consent page: platform, scope, mode, redirect, prefilled fields, and
-- Approve / Deny posting every authorize parameter back to /decide.
function Fake:consent_page(v, params)
  local h = util.html
  local prefill, others, hidden = {}, {}, {}
  for _, name in ipairs(util.sorted_keys(params)) do
    for _, value in ipairs(values_of(params[name])) do
      hidden[#hidden + 1] = string.format('<input type="hidden" name="%s" value="%s">', h(name), h(value))
      local field = name:match("^stripe_user%[([^%]]+)%]$")
      if field then
        prefill[#prefill + 1] = string.format("<tr><td>%s</td><td>%s</td></tr>", h(field), h(value))
      elseif not v[name] and name ~= "response_type" then
        others[#others + 1] = string.format("<tr><td>%s</td><td>%s</td></tr>", h(name), h(value))
      end
    end
  end
  local function table_or(rows, none)
    return #rows > 0 and ("<table>" .. table.concat(rows) .. "</table>") or ("<p>" .. none .. "</p>")
  end
  local platform = self.config.platform_name or self.config.client_id
  return http.html_page(200, "Connect " .. platform .. " — fake Stripe Connect", table.concat{
    '<p class="badge">Fake Stripe Connect — offline, ', h(mode_name(self.livemode)), " mode</p>",
    "<h1>", h(platform), " wants to connect to your Stripe account</h1><dl>",
    "<dt>Platform</dt><dd>", h(platform), " (<code>", h(v.client_id), "</code>)</dd>",
    "<dt>Scope</dt><dd><code>", h(v.scope), "</code> — ", h(SCOPE_TEXT[v.scope]), "</dd>",
    "<dt>Returns to</dt><dd><code>", h(v.redirect_uri), "</code></dd></dl>",
    "<h2>Prefilled fields</h2>", table_or(prefill, "None."),
    #others > 0 and ("<h2>Other parameters</h2>" .. table_or(others, "")) or "",
    '<form method="post" action="/oauth/authorize/decide">', table.concat(hidden),
    '<label>Account to connect (optional: blank connects a new account) ',
    '<input type="text" name="account" placeholder="acct_…" pattern="acct_[A-Za-z0-9]+" autocomplete="off"></label>',
    '<button type="submit" name="decision" value="approve">Approve</button>',
    '<button type="submit" name="decision" value="deny">Deny</button>',
    "</form>",
  })
end

-- GET /oauth/authorize
function Fake:authorize(req)
  local params = http.args_of(req)
  local v, answer = self:check_authorize(params)
  if not v then return answer end
  return self:consent_page(v, params)
end

-- with_query(uri, fields) -> uri with the fields (util.encode_fields) added
-- to its query.
local function with_query(uri, fields)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. util.encode_fields(fields)
end

-- POST /oauth/authorize/decide: approve → a fresh single-use code;
-- deny → error=access_denied.  Both 302 to the redirect_uri.
function Fake:decide(req)
  local form = http.form_of(req)
  if not form then return oauth_error(400, "invalid_request", "Malformed form body.") end
  local v, answer = self:check_authorize(form)
  if not v then return answer end
  local decision, account = single(form, "decision"), single(form, "account")
  local location
  if decision == "deny" then
    location = with_query(v.redirect_uri, { { "error", "access_denied" },
      { "error_description", DENIED }, { "state", v.state } })
  elseif decision == "approve" then
    if account == nil or account == "" then
      account = random_id("acct_", 8)
    elseif not account:match("^acct_%w+$") or #account > 64 then
      return oauth_error(400, "invalid_request", "account must look like acct_…", v.state)
    end
    local code = self:issued(random_id("ac_", 16))
    self.codes[code] = { account = account, scope = v.scope, livemode = self.livemode,
                         expires_at = self:now() + require("stripe_connect.fake").CODE_TTL }
    location = with_query(v.redirect_uri, { { "scope", v.scope }, { "code", code }, { "state", v.state } })
  else
    return oauth_error(400, "invalid_request", "decision must be approve or deny", v.state)
  end
  return http.redirect(location)
end

-- ------------------------------------------------------ token (§2)
-- Ends a connection: every token issued to it is revoked.
function Fake:revoke(account)
  local c = self.connections[account]
  if c then c.connected = false end
  for _, t in pairs(self.tokens) do
    if t.account == account then t.revoked = true end
  end
end

-- Issues an access token for (account, scope, livemode), revoking the
-- previous live one with the same scope and mode; answers the token body.
function Fake:issue(account, scope, livemode, refresh_token)
  for _, t in pairs(self.tokens) do
    if t.kind == "access" and t.account == account and t.scope == scope and t.livemode == livemode then
      t.revoked = true
    end
  end
  local prefix = mode_name(livemode)
  local access = self:issued(random_id("sk_" .. prefix .. "_", 16))
  self.tokens[access] = { kind = "access", account = account, scope = scope, livemode = livemode }
  return {
    access_token = access, livemode = livemode, refresh_token = refresh_token, scope = scope,
    stripe_publishable_key = "pk_" .. prefix .. "_" .. core.hex_encode(core.random_bytes(16)),
    stripe_user_id = account, token_type = "bearer",
  }
end

function Fake:exchange_code(form, key_livemode, rec)
  local code = rec.code
  if not code or code == "" then
    return oauth_error(400, "invalid_request", "No authorization code provided")
  end
  local c = self.codes[code]
  if not c then
    return oauth_error(400, "invalid_grant", "Authorization code does not exist: " .. code)
  end
  rec.stripe_user_id = c.account
  if c.used then
    self:revoke(c.account)
    return oauth_error(400, "invalid_grant", REUSED)
  elseif self:now() >= c.expires_at then
    return oauth_error(400, "invalid_grant", "Authorization code expired: " .. code)
  elseif key_livemode ~= c.livemode then
    return oauth_error(400, "invalid_grant", "This authorization code was issued in " .. mode_name(c.livemode) ..
      " mode, but a " .. mode_name(key_livemode) .. " mode API key was used.")
  end
  c.used = true
  local refresh = self:issued(random_id("rt_", 24))
  self.tokens[refresh] = { kind = "refresh", account = c.account, scope = c.scope, livemode = c.livemode }
  self.connections[c.account] = { account = c.account, scope = c.scope, livemode = c.livemode, connected = true }
  return json(200, self:issue(c.account, c.scope, c.livemode, refresh))
end

function Fake:refresh(form, key_livemode, rec)
  local refresh, scope = single(form, "refresh_token"), single(form, "scope")
  if not refresh or refresh == "" then
    return oauth_error(400, "invalid_request", "No refresh_token provided")
  end
  local t = self.tokens[refresh]
  if not t or t.kind ~= "refresh" or t.revoked then
    return oauth_error(400, "invalid_grant", "Invalid refresh token: it does not exist or has been revoked.")
  end
  rec.stripe_user_id, rec.scope = t.account, scope
  if scope ~= nil and scope ~= "" then
    if not SCOPE_RANK[scope] then
      return oauth_error(400, "invalid_scope", "Invalid scope provided: " .. scope .. ".")
    elseif SCOPE_RANK[scope] > SCOPE_RANK[t.scope] then
      return oauth_error(400, "invalid_scope", "Invalid scope provided: " .. scope ..
        ". The refresh token grants " .. t.scope .. ".")
    end
  else
    scope = t.scope
  end
  -- A live connection's refresh token mints test tokens with a test key.
  if key_livemode ~= t.livemode and (key_livemode or not t.livemode) then
    return oauth_error(400, "invalid_grant", "This refresh token was issued in " .. mode_name(t.livemode) ..
      " mode, but a " .. mode_name(key_livemode) .. " mode API key was used.")
  end
  return json(200, self:issue(t.account, scope, key_livemode, refresh))
end

-- POST /oauth/token (authenticated by Fake:recorded)
function Fake:token(form, key_livemode, rec)
  local grant_type = rec.grant_type
  if grant_type == nil or grant_type == "" then
    return oauth_error(400, "invalid_request", "No grant type specified")
  elseif grant_type == "authorization_code" then
    return self:exchange_code(form, key_livemode, rec)
  elseif grant_type == "refresh_token" then
    return self:refresh(form, key_livemode, rec)
  end
  return oauth_error(400, "unsupported_grant_type", "Unsupported grant type: " .. grant_type ..
    ". The only currently supported types are authorization_code and refresh_token.")
end

-- -------------------------------------------------- deauthorize (§3)
-- POST /oauth/deauthorize (authenticated by Fake:recorded)
function Fake:deauthorize(form, key_livemode, rec)
  local client_id, account = rec.client_id, rec.stripe_user_id
  if not client_id or client_id == "" or not account or account == "" then
    return oauth_error(400, "invalid_request", "No client_id or stripe_user_id parameter provided")
  elseif client_id ~= self.config.client_id then
    return oauth_error(401, "invalid_client", "No such application: " .. client_id)
  elseif key_livemode ~= self.livemode then
    return oauth_error(401, "invalid_client", "The " .. mode_name(key_livemode) ..
      " mode API key does not match the mode of " .. client_id .. " (" .. mode_name(self.livemode) .. ").")
  end
  local c = self.connections[account]
  if not c or not c.connected then
    return oauth_error(401, "invalid_client", "This application is not connected to stripe account " ..
      account .. ", or that account does not exist.")
  end
  self:revoke(account)
  return json(200, { stripe_user_id = account })
end

return Fake
