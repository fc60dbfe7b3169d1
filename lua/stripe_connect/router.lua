-- stripe_connect.router — the one router: a routes table to a dispatch
-- function.  The host's `serve` (host/apploader.c requires it before APP.lua
-- runs), the OpenResty entry points (stripe_connect.ngx) and the fake
-- (stripe_connect.fake) route with it; plain Lua, so it runs under lua5.4,
-- LuaJIT and nginx alike.
--
-- A routes table is an array of { METHOD, PATH, handler, max_body = BYTES }:
--   METHOD   "GET", "POST", …, or "*" (any method); a GET route also takes
--            HEAD (unless opts.head_is_get is false);
--   PATH     an exact path, or a Lua pattern when it starts with "^";
--   handler  function(req) -> res; the pattern's captures are in
--            req.params (an array; {} for an exact path or no capture);
--   max_body the route's body limit in bytes (see body_limit).
-- Routes are tried in order.  A path no route serves answers 404 (or
-- routes.not_found(req) / opts.not_found(req)); a path served only under
-- other methods answers 405 with Allow (or opts.method_not_allowed(req, allowed)).
local M = {}

local type, ipairs, error, find = type, ipairs, error, string.find
local concat, unpack = table.concat, table.unpack or unpack

local TEXT = "text/plain; charset=utf-8"

local function whole(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v % 1 == 0
end

-- compile(routes) -> the checked routes ({ method, path, pattern, handler,
-- max_body }); raises (no position) on a route that is not { METHOD, PATH,
-- handler } or a max_body that is not a whole number of bytes.  An
-- undeclared max_body is 0 for GET and HEAD routes and -1 (the caller's
-- cap) for the others.
function M.compile(routes)
  local out = {}
  for i, r in ipairs(routes) do
    if type(r) ~= "table" or type(r[1]) ~= "string" or type(r[2]) ~= "string" or r[3] == nil then
      error(("route %d: expected { METHOD, PATH, handler }"):format(i), 0)
    end
    local mb = r.max_body
    if mb ~= nil and (not whole(mb) or mb < 0) then
      error(("route %d: max_body must be a whole number of bytes"):format(i), 0)
    end
    if mb == nil then mb = (r[1] == "GET" or r[1] == "HEAD") and 0 or -1 end
    out[i] = { method = r[1], path = r[2], pattern = r[2]:sub(1, 1) == "^", handler = r[3], max_body = mb }
  end
  return out
end

local function takes(rm, method, head_is_get)
  return rm == "*" or rm == method or (head_is_get and method == "HEAD" and rm == "GET")
end

-- captures(route, path) -> the captures of a route that serves path ({} for
-- an exact path or a pattern without captures), or nil.
local function captures(r, path)
  if r.pattern then
    local m = { find(path, r.path) }
    if m[1] then return { unpack(m, 3) } end
  elseif r.path == path then
    return {}
  end
  return nil
end

-- match(compiled, method, path, head_is_get) -> route, captures | nil,
-- allowed (the methods of the routes that serve path, or nil: none does).
function M.match(compiled, method, path, head_is_get)
  local allowed
  for i = 1, #compiled do
    local r = compiled[i]
    local caps = captures(r, path)
    if caps then
      if takes(r.method, method, head_is_get ~= false) then return r, caps end
      allowed = allowed or {}
      allowed[#allowed + 1] = r.method
    end
  end
  return nil, allowed
end

local function plain(status, body, extra)
  local headers = { ["Content-Type"] = TEXT }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return { status = status, headers = headers, body = body }
end

local function default_405(_, allowed)
  return plain(405, "405 Method Not Allowed\n", { Allow = concat(allowed, ", ") })
end

local function default_404()
  return plain(404, "404 Not Found\n")
end

-- new(routes, opts) -> dispatch(req) -> res, body_limit(method, path) -> bytes.
-- opts (all optional): not_found(req) and method_not_allowed(req, allowed)
-- answer what no route does (routes.not_found is taken too); head_is_get =
-- false: a GET route does not take HEAD.  body_limit answers the max_body of
-- the route (method, path) goes to, -1 for "the caller's cap", 0 when no
-- route takes it.
function M.new(routes, opts)
  opts = opts or {}
  local compiled = M.compile(routes)
  local not_found = opts.not_found or routes.not_found or default_404
  if type(not_found) ~= "function" then error("routes.not_found must be a function", 0) end
  local not_allowed = opts.method_not_allowed or default_405
  local head_is_get = opts.head_is_get ~= false
  local function dispatch(req)
    local r, caps = M.match(compiled, req.method, req.path, head_is_get)
    if r then
      req.params = caps
      return r.handler(req)
    end
    if caps then return not_allowed(req, caps) end
    return not_found(req)
  end
  local function body_limit(method, path)
    local r = M.match(compiled, method, path, head_is_get)
    return r and r.max_body or 0
  end
  return dispatch, body_limit
end

-- app(value) -> dispatch, body_limit | nil: what APP.lua returned (a handler
-- function: itself and no body limits; a routes table: new(value)).  Raises
-- on anything else and on an empty routes table.
function M.app(value)
  if type(value) == "function" then return value, nil end
  if type(value) ~= "table" then
    error("APP.lua must return a handler function or a routes table, not " .. type(value), 0)
  end
  if value[1] == nil then error("APP.lua returned an empty routes table", 0) end
  return M.new(value)
end

return M
