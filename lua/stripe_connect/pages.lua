-- stripe_connect.pages — the platform's HTML pages: home (Connect button),
-- success, the problem pages of the callback, and the admin list.  Own small
-- CSS inline, no third-party assets or scripts; every dynamic value goes
-- through util.html.  Pages never contain secrets, codes or tokens: callers
-- pass only account ids, scopes and plain-words messages.
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local h = util.html

local M = {}

local CSS = [[
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;
color:#1a1f36;background:#f6f9fc}main{max-width:44rem;margin:4rem auto;padding:2rem;background:#fff;
border-radius:8px;box-shadow:0 2px 8px rgba(50,50,93,.1)}h1{font-size:1.5rem;margin:0 0 1rem}
p{margin:.5rem 0 1rem}.btn{display:inline-block;padding:.6rem 1.2rem;border:0;border-radius:6px;
background:#635bff;color:#fff;font-weight:600;text-decoration:none;cursor:pointer;font-size:1rem}
.btn:hover{background:#5046e4}.btn.secondary{background:#e3e8ee;color:#1a1f36}.muted{color:#697386;
font-size:.9rem}code{background:#f0f3f7;padding:.1rem .3rem;border-radius:4px}table{width:100%;
border-collapse:collapse;font-size:.9rem}th,td{text-align:left;padding:.4rem;border-bottom:1px solid #e3e8ee}
.status-connected{color:#0a7d3e}.status-disconnected{color:#b3261e}.status-onboarding{color:#9a5b00}form{margin:0}
main>:last-child{margin-bottom:0}.badge{display:inline-flex;align-items:center;justify-content:center;
width:2.5rem;height:2.5rem;border-radius:50%;font-size:1.3rem;font-weight:700;margin-bottom:.75rem}
.badge.ok{background:#d7f7e3;color:#0a7d3e}.badge.warn{background:#fff1d6;color:#9a5b00}
form>p:last-child{margin-bottom:0}label{display:block;font-weight:600}input[type=password]{display:block;
width:100%;max-width:24rem;margin-top:.35rem;padding:.55rem .7rem;border:1px solid #cbd2d9;border-radius:6px;
font:inherit}input:focus{outline:2px solid #635bff;outline-offset:1px}td.time{white-space:nowrap}
.btn.small{padding:.35rem .8rem;font-size:.875rem}main.wide{max-width:64rem;overflow-x:auto}
.notice{background:#eef6ff;border-left:4px solid #635bff;padding:.6rem .8rem;border-radius:4px}
nav.bar{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin:0 0 1rem}nav.bar form{display:inline}
nav.bar .spacer{flex:1}.filters a{margin-right:.75rem}.filters a[aria-current]{font-weight:700;color:#1a1f36}
a{color:#4b45c6}.actions{display:flex;gap:.75rem;flex-wrap:wrap}.btn.danger{background:#b3261e}
.btn.danger:hover{background:#8c1d18}
]]

-- The headers every page carries: a CSP that allows nothing but the inline
-- stylesheet (by hash), forms posting to this site, and no framing
-- (clickjacking of the admin's Disconnect buttons); no MIME sniffing.
M.SECURITY_HEADERS = {
  ["Content-Security-Policy"] = "default-src 'none'; style-src 'sha256-" .. core.base64_encode(core.sha256(CSS)) ..
    "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  ["X-Frame-Options"] = "DENY",
  ["X-Content-Type-Options"] = "nosniff",
}

-- headers(extra) -> a new table: Content-Type text/html, the security
-- headers, then `extra` (which wins).
function M.headers(extra)
  local hd = { ["Content-Type"] = "text/html; charset=utf-8" }
  for k, v in pairs(M.SECURITY_HEADERS) do hd[k] = v end
  for k, v in pairs(extra or {}) do hd[k] = v end
  return hd
end

-- layout(title, body_html, wide) -> the full HTML document (wide: the
-- admin table's wider card).
function M.layout(title, body, wide)
  return table.concat({
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    "<title>", h(title), "</title><style>", CSS, "</style></head><body>", wide and '<main class="wide">' or "<main>",
    body, "</main></body></html>\n",
  })
end

-- home(offer) -> the home page; offer = { oauth = bool, account_links = bool }
-- (default OAuth only): the Connect button (OAuth) and/or a form that sets up
-- a new Stripe account through Account Links (POST /onboard).
function M.home(offer)
  offer = offer or { oauth = true }
  local parts = { "<h1>Connect your Stripe account</h1>",
    "<p>Connect an existing Stripe account, or create one, to receive payments through this platform.</p>" }
  if offer.oauth then
    parts[#parts + 1] = '<p><a class="btn" href="/connect">Connect with Stripe</a></p>'
    parts[#parts + 1] = '<p class="muted">You will be sent to Stripe to approve the connection, then brought back here.</p>'
  end
  if offer.account_links then
    parts[#parts + 1] = '<form method="post" action="/onboard"><p><button class="btn' ..
      (offer.oauth and " secondary" or "") .. '" type="submit">Set up a new Stripe account</button></p></form>'
    parts[#parts + 1] = '<p class="muted">Stripe asks for your business details, then sends you back here.</p>'
  end
  return M.layout("Connect your Stripe account", table.concat(parts))
end

-- home_headers(form_origin) -> the home page's headers: its form may land
-- on Stripe's onboarding (a redirect after POST /onboard), so form-action
-- also allows that origin.
function M.home_headers(extra, form_origin)
  local hd = M.headers(extra)
  if form_origin then
    hd["Content-Security-Policy"] = hd["Content-Security-Policy"]:gsub("form%-action 'self'",
      "form-action 'self' " .. form_origin:gsub("%%", "%%%%"))
  end
  return hd
end

-- connected(account_id) -> the success page (account_id may be nil).
function M.connected(account_id)
  local who = account_id and ("<p>Your Stripe account <code>" .. h(account_id) .. "</code> is connected.</p>")
    or "<p>Your Stripe account is connected.</p>"
  return M.layout("Stripe account connected", table.concat({
    '<div class="badge ok" aria-hidden="true">&#10003;</div>', "<h1>You're connected</h1>", who,
    '<p><a class="btn secondary" href="/">Back to the start</a></p>',
  }))
end

-- problem{ title=, message=, retry=bool, detail= } -> a page explaining a
-- failed step, with a link to start again.
function M.problem(o)
  local parts = { '<div class="badge warn" aria-hidden="true">!</div>', "<h1>", h(o.title), "</h1>",
    "<p>", h(o.message), "</p>" }
  if o.detail then parts[#parts + 1] = '<p class="muted">' .. h(o.detail) .. "</p>" end
  if o.retry ~= false then
    parts[#parts + 1] = '<p><a class="btn" href="/connect">Start again</a></p>'
  end
  if o.link then
    parts[#parts + 1] = '<p><a class="btn secondary" href="' .. h(o.link.href) .. '">' .. h(o.link.text) .. "</a></p>"
  end
  return M.layout(o.title, table.concat(parts))
end

-- not_found() -> the 404 page (a path the platform does not serve).
function M.not_found()
  return M.problem{ title = "Page not found", message = "There is no page at this address.", retry = false,
    link = { href = "/", text = "Go to the start" } }
end

-- ------------------------------------------------------ the flow's outcomes

-- Each reason of a failed step (stripe_connect.flow's outcomes; the status
-- is flow.STATUS's): the page's title and message.
M.REASONS = {
  missing_state   = { "This connection link is not valid",
                      "The answer from Stripe did not carry the security token we sent. Please start again." },
  malformed       = { "This connection link is not valid",
                      "The security token in this link is damaged or was changed. Please start again." },
  unknown_key     = { "This connection link is not valid",
                      "This link was made with a key we no longer use. Please start again." },
  bad_signature   = { "This connection link is not valid",
                      "The security token in this link was changed. Please start again." },
  expired         = { "This connection link has expired",
                      "Connecting took longer than we allow. Please start again." },
  no_binding      = { "Please finish in the browser where you started",
                      "This connection was started in another browser, or your cookies were cleared. " ..
                      "For your security, start again here." },
  other_browser   = { "Please finish in the browser where you started",
                      "This connection was started in another browser. For your security, start again here." },
  access_denied   = { "You declined to connect",
                      "No account was connected. You can try again whenever you like." },
  stripe_refused  = { "Stripe could not start the connection",
                      "Stripe reported a problem with the connection request. Please start again." },
  missing_code    = { "The answer from Stripe is incomplete",
                      "Stripe's answer did not include an authorization code. Please start again." },
  invalid_grant   = { "This connection link was already used or has expired",
                      "Stripe no longer accepts this authorization. Please start again." },
  oauth_error     = { "Stripe refused the connection",
                      "Stripe did not accept the authorization. Please start again." },
  stripe_timeout  = { "Stripe did not answer in time",
                      "We could not finish connecting because Stripe took too long to answer. Please try again in a moment." },
  stripe_unreachable = { "We could not reach Stripe",
                      "We could not finish connecting because Stripe could not be reached. Please try again in a moment." },
  stripe_error    = { "Stripe had a problem",
                      "Stripe answered with an error. Please try again in a moment." },
  store_unavailable = { "Something went wrong on our side",
                      "We could not record the connection. Please try again in a moment." },
  interrupted     = { "We could not finish connecting",
                      "Connecting was interrupted on our side. Please start again." },
  other_owner     = { "Please finish while signed in as the user who started",
                      "This connection was started by another user of this site. Sign in as that user, or start again." },
  in_progress     = { "Still connecting",
                      "This connection is still being completed. Reload this page in a moment." },
  invalid_link    = { "This link is not valid",
                      "The address of this page is incomplete or was changed. Please start again." },
  not_shown       = { "Please use the browser you connected with",
                      "This page shows a connection only in the browser that made it. " ..
                      "If you connected an account, it is listed where you started." },
}

-- The headers of the flow's answers: none is cached, and none sends the
-- callback's URL (its code and state) on as a Referer.
local function flow_headers(hd)
  hd["Cache-Control"], hd["Referrer-Policy"] = "no-store", "no-referrer"
  return hd
end

-- outcome(o) -> res: the default answer to a flow outcome (stripe_connect.flow):
-- a redirect (302 to Stripe with the binding cookie, 303 back into the site),
-- the success page, or the problem page of o.reason.
function M.outcome(o)
  -- Outcomes read back from a store may carry 303.0 (JSON numbers).
  local status = math.floor(tonumber(o.status) or 502)
  if status == 302 or status == 303 then
    return { status = status, body = "", headers = flow_headers{ Location = o.location, ["Set-Cookie"] = o.set_cookie,
      ["Content-Type"] = "text/plain; charset=utf-8" } }
  end
  local headers = flow_headers(M.headers())
  if o.kind == "account" then return { status = status, headers = headers, body = M.connected(o.account_id) } end
  local r = M.REASONS[o.reason] or M.REASONS.stripe_error
  if o.reason == "in_progress" then headers["Retry-After"] = "2" end
  return { status = status, headers = headers,
    body = M.problem{ title = r[1], message = r[2], retry = o.reason ~= "in_progress" } }
end

-- respond(policy, o, req) -> res: the policy's render hook's answer to
-- outcome o (policy.render), else outcome(o).  A hook's answer keeps the
-- flow's safe defaults where it sets none: its status, the binding cookie
-- (o.set_cookie), Cache-Control: no-store and Referrer-Policy: no-referrer.
function M.respond(policy, o, req)
  local res = policy and policy.render and policy.render(o, req)
  if type(res) ~= "table" then return M.outcome(o) end
  res.status = res.status or math.floor(tonumber(o.status) or 502)
  res.body = res.body or ""
  local hd = res.headers or {}
  res.headers = hd
  if o.set_cookie and hd["Set-Cookie"] == nil then hd["Set-Cookie"] = o.set_cookie end
  if hd["Cache-Control"] == nil then hd["Cache-Control"] = "no-store" end
  if hd["Referrer-Policy"] == nil then hd["Referrer-Policy"] = "no-referrer" end
  return res
end

local function fmt_time(t)
  if not t then return "" end
  return os.date("!%Y-%m-%d %H:%M:%SZ", t)
end

local FILTERS = { { nil, "All" }, { "connected", "Connected" }, { "disconnected", "Disconnected" } }

local function admin_query(status, owner)
  local q = {}
  if status then q[#q + 1] = "status=" .. core.url_encode(status) end
  if owner then q[#q + 1] = "owner=" .. core.url_encode(owner) end
  return #q > 0 and ("?" .. table.concat(q, "&")) or ""
end

-- admin(accounts, opts) -> the admin list.  opts: csrf (the session's form
-- field; without it, a Bearer-only view, no Disconnect or Sign out forms),
-- status (the filter shown: "connected", "disconnected" or nil for all),
-- owner (the owner filter), notice (what the last action did).
-- Each connected account has a Disconnect link to its confirmation page.
function M.admin(accounts, opts)
  opts = opts or {}
  local csrf = opts.csrf
  local rows = {}
  for _, a in ipairs(accounts) do
    local action = ""
    if a.status == "connected" and csrf then
      action = '<a class="btn secondary small" href="/admin/accounts/' .. h(a.id) .. '/disconnect">Disconnect</a>'
    end
    rows[#rows + 1] = table.concat({
      "<tr><td><code>", h(a.id), "</code></td><td class=\"status-", h(a.status), "\">", h(a.status),
      "</td><td>", h(a.scope), "</td><td>", a.livemode and "live" or "test", "</td><td>", h(a.owner),
      "</td><td class=\"time\">",
      h(fmt_time(a.connected_at)), "</td><td>", action, "</td></tr>",
    })
  end
  if #rows == 0 then
    rows[1] = '<tr><td colspan="7" class="muted">' ..
      (opts.status and ("No " .. h(opts.status) .. " accounts.") or "No accounts yet.") .. "</td></tr>"
  end
  local filters = {}
  for _, f in ipairs(FILTERS) do
    filters[#filters + 1] = '<a href="/admin' .. h(admin_query(f[1], opts.owner)) .. '"' ..
      (f[1] == opts.status and ' aria-current="page"' or "") .. ">" .. f[2] .. "</a>"
  end
  local nav = { '<nav class="bar"><a href="/">Home</a><a href="/admin', h(admin_query(opts.status, opts.owner)),
    '">Refresh</a><span class="spacer"></span>' }
  if csrf then
    nav[#nav + 1] = '<form method="post" action="/admin/logout"><input type="hidden" name="csrf" value="' ..
      h(csrf) .. '"><button class="btn secondary small" type="submit">Sign out</button></form>'
  end
  nav[#nav + 1] = "</nav>"
  return M.layout("Connected accounts", table.concat({
    table.concat(nav), "<h1>Connected accounts</h1>",
    opts.notice and ('<p class="notice" role="status">' .. h(opts.notice) .. "</p>") or "",
    '<p class="filters">Show: ', table.concat(filters), "</p>",
    opts.owner and ('<p class="muted">Owner <code>' .. h(opts.owner) .. "</code></p>") or "",
    "<table><thead><tr><th>Account</th><th>Status</th><th>Scope</th>",
    "<th>Mode</th><th>Owner</th><th>Connected</th><th></th></tr></thead><tbody>", table.concat(rows),
    "</tbody></table>",
  }), true)
end

-- admin_confirm(account, csrf) -> "Disconnect acct_…?" with the form that
-- does it (POST …/deauthorize) and a way back.
function M.admin_confirm(a, csrf)
  return M.layout("Disconnect " .. a.id .. "?", table.concat({
    '<div class="badge warn" aria-hidden="true">!</div>',
    "<h1>Disconnect <code>", h(a.id), "</code>?</h1>",
    "<p>Stripe will revoke this platform's access to the account (its tokens stop working), ",
    "and the account is kept here as disconnected. Its owner can connect again later.</p>",
    '<p class="muted">Status ', h(a.status), ", ", a.livemode and "live" or "test", " mode",
    a.owner and (", owner " .. h(a.owner)) or "", ".</p>",
    '<form method="post" action="/admin/accounts/', h(a.id), '/deauthorize">',
    '<input type="hidden" name="csrf" value="', h(csrf), '">',
    '<p class="actions"><button class="btn danger" type="submit">Disconnect</button>',
    '<a class="btn secondary" href="/admin">Cancel</a></p></form>',
  }))
end

return M
