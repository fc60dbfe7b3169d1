-- stripe_connect.fake.accounts — the fake's accounts: GET /v1/account,
-- POST /v1/accounts and GET /v1/accounts/{id} (Standard accounts the
-- platform creates), POST /v1/account_links and the hosted onboarding page
-- it links to (GET /setup/s/{token}, POST …/submit), and
-- POST /__fake/accounts/{acct}/complete (onboarding without the page).
-- Methods of the fake, mixed in by stripe_connect.fake; the /v1 endpoints
-- are wrapped by Fake:v1 (fake/v1.lua).
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"
local http = require "stripe_connect.fake.http"

local json, single, stripe_error, no_access = http.json, http.single, http.stripe_error, http.no_access
local html_page, redirect = http.html_page, http.redirect

local Fake = {}

-- The account object Stripe answers for id.
function Fake:account_object(id, livemode)
  local a = self.accounts[id]
  if a then
    local o = util.copy(a)
    o.object, o.type = "account", "standard"
    return o
  end
  return { id = id, object = "account", type = "standard", livemode = livemode,
           details_submitted = true, charges_enabled = true, payouts_enabled = true }
end

-- GET /v1/account: the acting account, or the platform's own.
function Fake:v1_account(req, form, acting, livemode)
  if not acting then
    return json(200, { id = "acct_platform_fake", object = "account", type = "standard",
                       business_profile = { name = self.config.platform_name } })
  end
  return json(200, self:account_object(acting, livemode))
end

local function missing(param)
  return stripe_error(400, "invalid_request_error", "Missing required param: " .. param .. ".", "parameter_missing", param)
end

local function as_platform_only(acting)
  if acting then
    return stripe_error(400, "invalid_request_error",
      "This call must be made as the platform (without Stripe-Account).", nil)
  end
end

-- POST /v1/accounts: type=standard (+ email, country) -> a new account the
-- platform controls; it counts as connected until the platform or the user
-- ends it.
function Fake:v1_accounts_create(req, form, acting, livemode)
  local refused = as_platform_only(acting)
  if refused then return refused end
  local account_type = single(form, "type")
  if not account_type or account_type == "" then return missing("type") end
  if account_type ~= "standard" then
    return stripe_error(400, "invalid_request_error", "The fake creates type=standard accounts only.", nil, "type")
  end
  local country = single(form, "country")
  if country ~= nil and not country:match("^%a%a$") then
    return stripe_error(400, "invalid_request_error", "Country '" .. country .. "' is unknown.", nil, "country")
  end
  local id = http.random_id("acct_", 8)
  self.accounts[id] = { id = id, email = single(form, "email"), country = (country or "US"):upper(),
    created = self:now(), livemode = livemode, details_submitted = false, charges_enabled = false,
    payouts_enabled = false }
  self.connections[id] = { account = id, scope = "read_write", livemode = livemode, connected = true, created = true }
  return json(200, self:account_object(id, livemode))
end

-- GET /v1/accounts/{id}: an account the platform is connected to.
function Fake:v1_accounts_retrieve(req, form, acting, livemode, id)
  if acting and acting ~= id then return no_access(id) end
  local c = self.connections[id]
  if not c or not c.connected then return no_access(id) end
  return json(200, self:account_object(id, livemode))
end

local function base_of(req)
  local host = req.headers and req.headers["host"] or "127.0.0.1"
  return "http://" .. host
end

local function http_url(v)
  return type(v) == "string" and v:match("^https?://[^%s]+$") ~= nil
end

-- POST /v1/account_links: account, refresh_url, return_url,
-- type=account_onboarding|account_update -> { object = "account_link", url,
-- created, expires_at }.  The link is single-use and expires after
-- stripe_connect.fake.ACCOUNT_LINK_TTL seconds; an expired or visited link
-- sends the user to refresh_url.
function Fake:v1_account_links(req, form, acting, livemode)
  local refused = as_platform_only(acting)
  if refused then return refused end
  for _, name in ipairs{ "account", "type" } do
    if not single(form, name) or single(form, name) == "" then return missing(name) end
  end
  local account, link_type = single(form, "account"), single(form, "type")
  if link_type ~= "account_onboarding" and link_type ~= "account_update" then
    return stripe_error(400, "invalid_request_error", "Invalid type: must be one of account_onboarding or account_update",
      nil, "type")
  end
  for _, name in ipairs{ "refresh_url", "return_url" } do
    local v = single(form, name)
    if v == nil then
      if link_type == "account_onboarding" then return missing(name) end
    elseif not http_url(v) then
      return stripe_error(400, "invalid_request_error", "Not a valid URL", "url_invalid", name)
    end
  end
  local c = self.connections[account]
  if not c or not c.connected then return no_access(account) end
  if not self.accounts[account] then
    return stripe_error(400, "invalid_request_error", "You cannot create account links for accounts that " ..
      "connected through OAuth: the account is managed by its owner.", nil, "account")
  end
  local token = core.hex_encode(core.random_bytes(12))
  local now, ttl = self:now(), require("stripe_connect.fake").ACCOUNT_LINK_TTL
  self.links[token] = { account = account, refresh_url = single(form, "refresh_url"),
    return_url = single(form, "return_url"), expires_at = now + ttl }
  return json(200, { object = "account_link", created = now, expires_at = now + ttl,
    url = base_of(req) .. "/setup/s/" .. token })
end

-- The link for token, or nil and the answer: 404 when unknown, a redirect to
-- refresh_url once it expired or was used.
function Fake:live_link(token, visiting)
  local l = self.links[token]
  if not l then return nil, html_page(404, "Link not found", "<h1>This link does not exist</h1>") end
  if self:now() >= l.expires_at or l.used or (visiting and l.visited) then
    l.used = true
    return nil, redirect(l.refresh_url or l.return_url)
  end
  return l
end

-- GET /setup/s/{token}: the onboarding page (Submit / Save for later).
function Fake:onboarding_page(req, token)
  local l, answer = self:live_link(token, true)
  if not l then return answer end
  l.visited = true
  local a = self.accounts[l.account]
  local h = util.html
  return html_page(200, "Set up your Stripe account — fake Stripe", table.concat{
    '<p class="badge">Fake Stripe Connect — offline, ', h(http.mode_name(self.livemode)), " mode</p>",
    "<h1>Set up your Stripe account for ", h(self.config.platform_name or self.config.client_id), "</h1><dl>",
    "<dt>Account</dt><dd><code>", h(l.account), "</code></dd>",
    "<dt>Email</dt><dd>", h(a and a.email or "—"), "</dd>",
    "<dt>Country</dt><dd>", h(a and a.country or "—"), "</dd></dl>",
    '<form method="post" action="/setup/s/', h(token), '/submit">',
    '<button type="submit" name="decision" value="submit">Submit</button>',
    '<button type="submit" name="decision" value="later">Save for later</button>',
    "</form>",
  })
end

-- POST /setup/s/{token}/submit: decision=submit completes the account
-- (details_submitted, charges_enabled, payouts_enabled; an account.updated
-- event) and sends the user to return_url; decision=later returns unchanged.
function Fake:onboarding_submit(req, token)
  local l, answer = self:live_link(token, false)
  if not l then return answer end
  l.used = true
  local form = http.form_of(req) or {}
  local a = self.accounts[l.account]
  if single(form, "decision") == "submit" and a then
    a.details_submitted, a.charges_enabled, a.payouts_enabled = true, true, true
    self:send_event("account.updated", l.account, self:account_object(l.account, a.livemode))
  end
  return redirect(l.return_url)
end

-- /__fake/accounts/{acct}/complete: finish onboarding without the page.
function Fake:complete_account(account)
  local a = self.accounts[account]
  if not a then return json(404, { error = "not_found", error_description = account .. " was not created here" }) end
  a.details_submitted, a.charges_enabled, a.payouts_enabled = true, true, true
  local event, delivery = self:send_event("account.updated", account, self:account_object(account, a.livemode))
  return json(200, { account = self:account_object(account, a.livemode), event = event, delivery = delivery })
end

return Fake
