-- spec/support/http.lua — an HTTP client for specs, on core.http_request
-- (synchronous under `stripe-connect run`; never follows redirects).
--
--   local http = require "support.http"
--   http.request{ method=, url=, headers=, body=, timeout=, ... }   -- core.http_request's options
--     -> res | nil, message, code
--   http.get(url [, headers]), http.post_form(url, fields [, headers])
--   local b = http.browser()      -- a cookie jar
--   b:get(url [, headers]), b:post_form(url, fields [, headers]), b:request{...}
--   b.cookies                     -- name -> value
--
-- The browser keeps one jar for every host (specs talk to 127.0.0.1 only):
-- it stores each Set-Cookie by name, drops a cookie on Max-Age<=0 or an
-- Expires in the past, ignores Domain, Path and Secure, and sends every
-- cookie back in one Cookie header.
local core = require "stripe_connect.core"

local M = {}

function M.request(opts)
  return core.http_request(opts)
end

function M.get(url, headers)
  return core.http_request{ method = "GET", url = url, headers = headers }
end

local function form_headers(headers)
  local h = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  for k, v in pairs(headers or {}) do h[k] = v end
  return h
end

function M.post_form(url, fields, headers)
  return core.http_request{ method = "POST", url = url, headers = form_headers(headers),
                            body = core.form_encode(fields) }
end

local Browser = {}
Browser.__index = Browser

function M.browser()
  return setmetatable({ cookies = {} }, Browser)
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- True when an Expires attribute (IMF-fixdate) lies in the past.
local function expired(value)
  local d, mon, y, hh, mm, ss = value:match("(%d+)[ -](%a+)[ -](%d+) (%d+):(%d+):(%d+)")
  if not d or not MONTHS[mon] then return false end
  local t = os.time{ year = tonumber(y), month = MONTHS[mon], day = tonumber(d),
                     hour = tonumber(hh), min = tonumber(mm), sec = tonumber(ss) }
  local utc_now = os.time(os.date("!*t"))
  return t <= utc_now
end

-- Apply one Set-Cookie header value to the jar.
function Browser:store(set_cookie)
  local pair, attrs = set_cookie:match("^([^;]*)(.*)$")
  local name, value = pair:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
  if not name or name == "" then return end
  value = value:match('^"(.*)"$') or value
  local remove = false
  for attr in attrs:gmatch(";%s*([^;]+)") do
    local k, v = attr:match("^([^=]-)%s*=%s*(.-)%s*$")
    k = (k or attr):lower()
    if k == "max-age" and tonumber(v) and tonumber(v) <= 0 then remove = true end
    if k == "expires" and v and expired(v) then remove = true end
  end
  if remove then self.cookies[name] = nil else self.cookies[name] = value end
end

function Browser:cookie_header()
  local names = {}
  for name in pairs(self.cookies) do names[#names + 1] = name end
  if #names == 0 then return nil end
  table.sort(names)
  local parts = {}
  for i, name in ipairs(names) do parts[i] = name .. "=" .. self.cookies[name] end
  return table.concat(parts, "; ")
end

function Browser:request(opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local h = {}
  for k, v in pairs(opts.headers or {}) do h[k] = v end
  local has_cookie = false
  for k in pairs(h) do if k:lower() == "cookie" then has_cookie = true end end
  if not has_cookie then h.Cookie = self:cookie_header() end
  o.headers = h
  local res, err, code = core.http_request(o)
  if not res then return nil, err, code end
  for _, sc in ipairs(res.headers["set-cookie"] or {}) do self:store(sc) end
  return res
end

function Browser:get(url, headers)
  return self:request{ method = "GET", url = url, headers = headers }
end

function Browser:post_form(url, fields, headers)
  return self:request{ method = "POST", url = url, headers = form_headers(headers),
                       body = core.form_encode(fields) }
end

return M
