-- stripe_connect.fake.http — what the fake Connect's endpoint families
-- (lua/stripe_connect/fake/*.lua) share: reading a request (form, query, a
-- single parameter, the presented key) and writing an answer (JSON, Stripe's
-- two error shapes, lists, HTML pages, redirects), and random ids.
-- Internal to stripe_connect.fake.
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local M = {}

-- ------------------------------------------------------------ answers
M.json = util.json_response

-- random_id(prefix, bytes) -> prefix .. hex of `bytes` random bytes.
function M.random_id(prefix, bytes)
  return prefix .. core.hex_encode(core.random_bytes(bytes))
end

function M.mode_name(livemode) return livemode and "live" or "test" end

-- The OAuth endpoints' error: { error, error_description, state }.
function M.oauth_error(status, code, description, state)
  return M.json(status, { error = code, error_description = description, state = state })
end

-- Stripe's error for an unknown URL or method (no request id).
function M.api_error(status, message, code)
  return M.json(status, { error = { type = "invalid_request_error", message = message, code = code } })
end

-- The /v1 endpoints' error: { error = { type, message, code, param, request_id } }.
function M.stripe_error(status, etype, message, code, param)
  return M.json(status, { error = { type = etype, message = message, code = code, param = param,
    request_id = M.random_id("req_", 7) } })
end

-- 403 account_invalid: the key has no access to target.
function M.no_access(target)
  return M.stripe_error(403, "invalid_request_error", "The provided key does not have access to account '" ..
    target .. "' (or that account does not exist). Application access may have been revoked.", "account_invalid")
end

-- 404 for a path the fake does not serve.
function M.unknown(req)
  return M.api_error(404, "Unrecognized request URL (" .. req.method .. ": " .. req.path .. ").")
end

-- {"data": [...]} even when empty.
function M.list(items)
  return M.json(200, util.json_data_list(items))
end

M.PAGE_STYLE = [[
body{font:16px/1.5 system-ui,sans-serif;background:#f6f9fc;color:#1a1f36;margin:0}
main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 2px 8px #0002}
.badge{display:inline-block;background:#ffe8a3;padding:.1rem .5rem;border-radius:4px;font-size:.8rem}
dt{font-weight:600;margin-top:.6rem}dd{margin:0}code{font-size:.9rem;word-break:break-all}
table{border-collapse:collapse;margin:.5rem 0}td{border-top:1px solid #e3e8ee;padding:.2rem .6rem .2rem 0;overflow-wrap:anywhere}
label{display:block;margin:1rem 0}input[type=text]{width:100%;padding:.4rem;box-sizing:border-box}
button{font:inherit;padding:.5rem 1.2rem;margin-right:.5rem;border-radius:4px;border:1px solid #635bff;cursor:pointer}
button[value=approve]{background:#635bff;color:#fff}button[value=deny]{background:#fff;color:#635bff}
]]

-- html_page(status, title, body) -> a page in the fake's style (title
-- escaped here, body already HTML), never cached or framed.
function M.html_page(status, title, body)
  return { status = status, headers = {
      ["Content-Type"] = "text/html; charset=utf-8", ["Cache-Control"] = "no-store",
      ["X-Frame-Options"] = "DENY", ["Referrer-Policy"] = "no-referrer",
      ["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    }, body = table.concat{ '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
      "<title>", util.html(title), "</title><style>", M.PAGE_STYLE, "</style></head>\n<body><main>",
      body, "</main></body></html>\n" } }
end

-- 302 to location.
function M.redirect(location)
  return { status = 302, headers = { Location = location, ["Cache-Control"] = "no-store",
    ["Content-Type"] = "text/plain; charset=utf-8" }, body = "Redirecting\n" }
end

-- ------------------------------------------------------ requests
-- The form body's fields, or nil when it is malformed.
function M.form_of(req)
  local t = core.parse_form(req.body or "")
  return t
end

-- The query's fields ({} when there is none).
function M.args_of(req)
  return req.args or core.parse_query(req.query or "") or {}
end

-- The one value of a parameter; a repeated one is an error.
function M.single(params, name)
  local v = params[name]
  if type(v) == "table" then return nil, "Duplicate parameter: " .. name end
  return v
end

-- key from Basic (the user part), Bearer, or the client_secret field;
-- returns key | nil, and the method used.
function M.presented_key(req, form)
  local auth = req.headers and req.headers["authorization"]
  if auth then
    local scheme, value = auth:match("^(%S+)%s+(%S+)%s*$")
    scheme = scheme and scheme:lower()
    if scheme == "basic" then
      local decoded = core.base64_decode(value)
      return decoded and decoded:match("^([^:]*)"), "basic"
    elseif scheme == "bearer" then
      return value, "bearer"
    end
  end
  local secret = form and form.client_secret
  if type(secret) == "string" and secret ~= "" then return secret, "client_secret" end
  return nil, "none"
end

return M
