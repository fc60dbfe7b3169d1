-- stripe_connect.ngx — the platform app (stripe_connect.app's routes, the
-- same policy file and settings as `stripe-connect serve scripts/platform.lua`)
-- inside nginx with lua-nginx-module.  scripts/openresty/nginx.conf wires it:
--
--   init_by_lua_block        { require("stripe_connect.ngx").init() }
--   init_worker_by_lua_block { require("stripe_connect.ngx").init_worker() }
--   location / { content_by_lua_block { require("stripe_connect.ngx").handle() } }
--
-- The seams, so that app.lua / flow.lua / webhook.lua run unchanged:
-- * requests and responses: ngx's request becomes the request table `req` of `serve` (doc/reference.md, Apps)
--   table and the handler's `res` is written back (request(), respond());
--   the routes are dispatched by stripe_connect.router, as under the host (exact paths, Lua
--   patterns with captures in req.params, 404, 405 with Allow, HEAD on GET);
-- * Stripe: the OAuth calls and the API client go through
--   stripe_connect.ngx_http (cosockets, non-blocking), waits use ngx.sleep;
-- * the store: every store call runs in nginx's thread pool
--   (ngx.run_worker_thread, pool THREAD_POOL, stripe_connect.ngx_thread),
--   where the host's SQLite store runs as it is.  One-time flows, the
--   callback's single flight and webhook de-duplication are the store's
--   atomic statements, so they hold across nginx workers (and restarts).
--   DATABASE=memory: is an SQLite file in nginx's prefix, emptied when
--   nginx starts (worker processes share no memory);
-- * metrics: counters and histograms in the shared dict METRICS_DICT, so
--   /metrics adds up every worker.
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

-- lua-nginx-module's API table (a global it sets in every nginx Lua VM).
local ngx = rawget(_G, "ngx")

local M = {}

M.THREAD_POOL = "stripe_connect"
M.METRICS_DICT = "stripe_connect_metrics"
M.MEMORY_FILE = "memory.sqlite" -- DATABASE=memory: under nginx, in the prefix

local S = {} -- what init makes (inherited by the workers) and init_worker adds

-- --------------------------------------------------------------- store

local OPTIONAL = { "ping", "account_counts", "accounts_of", "forget_event", "claim_event", "finish_event" }

-- thread_store(url) -> a store whose methods run in the thread pool.
function M.thread_store(url)
  local s = { kind = "ngx_thread", url = url }
  local function method(name)
    return function(_, ...)
      local ok, res, a, b = ngx.run_worker_thread(M.THREAD_POOL, "stripe_connect.ngx_thread", "call", url, name, ...)
      if not ok then return nil, "thread pool: " .. tostring(res) end
      if not res then return nil, a end -- the store raised or could not open
      return a, b
    end
  end
  for _, name in ipairs(require("stripe_connect.store").METHODS) do s[name] = method(name) end
  for _, name in ipairs(OPTIONAL) do s[name] = method(name) end
  s.close = function() return true end
  return s
end

-- ------------------------------------------------------------- metrics

-- metrics_backend(dict) -> the core's metrics_* functions over a shared
-- dict (checked as the core checks them, then counted with atomic incr).
function M.metrics_backend(dict)
  local metrics = require "stripe_connect.metrics"
  local check = metrics.lua_backend()
  local bounds = metrics.BOUNDS
  local b = {}
  function b.metrics_add(series, n)
    check.metrics_add(series, n)
    dict:incr("c\0" .. series, n or 1, 0)
  end
  function b.metrics_observe(name, labels, seconds)
    check.metrics_observe(name, labels, seconds)
    local i = 1
    while i <= #bounds and seconds > bounds[i] do i = i + 1 end
    local key = "h\0" .. name .. "\0" .. labels .. "\0"
    dict:incr(key .. i, 1, 0)
    dict:incr(key .. "sum", seconds, 0)
  end
  function b.metrics_snapshot()
    local out = { counters = {}, histograms = {}, bounds = {} }
    local raw = {}
    for _, key in ipairs(dict:get_keys(0)) do
      local v = dict:get(key)
      local series = key:match("^c%z(.*)$")
      if series then
        out.counters[series] = v
      else
        local name, labels, slot = key:match("^h%z([^%z]*)%z([^%z]*)%z(.*)$")
        if name then
          raw[name] = raw[name] or {}
          local h = raw[name][labels] or { counts = {}, sum = 0 }
          raw[name][labels] = h
          if slot == "sum" then h.sum = v else h.counts[tonumber(slot)] = v end
        end
      end
    end
    for name, by_labels in pairs(raw) do
      local t = {}
      for labels, h in pairs(by_labels) do
        local buckets, total = {}, 0
        for i = 1, #bounds + 1 do
          total = total + (h.counts[i] or 0)
          if i <= #bounds then buckets[i] = total end
        end
        t[labels] = { buckets = buckets, sum = h.sum, count = total }
      end
      out.histograms[name] = t
    end
    for i, v in ipairs(bounds) do out.bounds[i] = v end
    return out
  end
  return b
end

-- ------------------------------------------------------------ settings

-- The DATABASE the workers use: memory: is a file in nginx's prefix.
local function database_url(cfg, prefix)
  if cfg.database == "memory:" or cfg.database == "memory" then
    return "sqlite:" .. prefix .. M.MEMORY_FILE, true
  end
  return cfg.database, false
end

-- init() — init_by_lua (nginx's master, before the workers fork): the
-- settings (config.load), the store (opened once to check it and migrate
-- the schema, then closed) and the policy file.  A problem stops nginx
-- with the host's messages.
function M.init()
  local config = require "stripe_connect.config"
  local app = require "stripe_connect.app"
  local cfg, problems = config.load()
  if not cfg then error("\n" .. config.format_problems(problems), 0) end
  local url, memory = database_url(cfg, ngx.config.prefix())
  if memory then
    local path = url:sub(#"sqlite:" + 1)
    for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
  end
  local store, err = require("stripe_connect.store").open(url)
  if not store then
    error("\n" .. config.format_problems({ "DATABASE: " .. tostring(err) ..
      " (check the path, and that its folder exists and is writable)" }), 0)
  end
  store:close()
  local policy, perr = app.policy_of(cfg)
  if not policy then error("\n" .. config.format_problems({ perr }), 0) end
  S.config, S.policy, S.database = cfg, policy, url
end

-- The OAuth calls with the cosocket transport and ngx.sleep (the module's
-- own authorize_url, so /connect keeps its prebuilt URL head).
local function oauth_module()
  local oauth = require "stripe_connect.oauth"
  local http = require "stripe_connect.ngx_http"
  local function with_transport(fn)
    return function(opts)
      local o = {}
      for k, v in pairs(opts) do o[k] = v end
      o.transport, o.sleep = o.transport or http.request, o.sleep or ngx.sleep
      return fn(o)
    end
  end
  return { authorize_url = oauth.authorize_url, token = with_transport(oauth.token),
    refresh = with_transport(oauth.refresh), deauthorize = with_transport(oauth.deauthorize) }
end

-- The platform's lines go to stderr (nginx's error_log stderr) without
-- ngx.log's request context: that context is the request line, whose query
-- holds the callback's authorization code.
local function log_error(msg)
  io.stderr:write(os.date("!%Y/%m/%d %H:%M:%S"), " [error] ", ngx.worker.pid(), ": ",
    (tostring(msg):gsub("[\r\n]", " ")), "\n")
end

-- init_worker() — init_worker_by_lua: the routes of stripe_connect.app.
function M.init_worker()
  assert(S.config, "stripe_connect.ngx: init() did not run (init_by_lua_block)")
  local dict = ngx.shared[M.METRICS_DICT]
  assert(dict, "stripe_connect.ngx: lua_shared_dict " .. M.METRICS_DICT .. " is missing")
  local metrics = require("stripe_connect.metrics").new(M.metrics_backend(dict))
  local secrets = require("stripe_connect.config").secret_values(S.config)
  S.log = util.redacting_log(log_error, secrets)
  -- tokens sealed at rest as under the host (cli.from_env): TOKEN_KEYS
  local store = M.thread_store(S.database)
  if S.config.token_keys then store = require("stripe_connect.tokens").wrap(store, S.config.token_keys, S.log) end
  local routes = require("stripe_connect.app").new{
    config = S.config, store = store, policy = S.policy, log = S.log,
    metrics = metrics, oauth = oauth_module(), transport = require("stripe_connect.ngx_http").request,
    sleep = ngx.sleep,
  }
  S.dispatch = require("stripe_connect.router").new(routes)
end

-- ------------------------------------------------------------- requests

local TEXT = "text/plain; charset=utf-8"

local function plain(status, body, extra)
  local headers = { ["Content-Type"] = TEXT }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return { status = status, headers = headers, body = body }
end

-- request() -> req (`serve`'s request table, doc/reference.md: Apps) | nil, res (the request is
-- refused: a query that does not parse, a body nginx kept in a file).
function M.request()
  local uri = ngx.var.request_uri
  local path, query = uri:match("^([^?]*)%??(.*)$")
  local args = {}
  if query ~= "" then
    args = core.parse_query(query)
    if not args then return nil, plain(400, "400 Bad Request\n") end
  end
  local headers = {}
  for name, value in pairs(ngx.req.get_headers(100)) do
    if type(value) == "table" then value = table.concat(value, name == "cookie" and "; " or ", ") end
    headers[name] = value
  end
  local cookies = headers.cookie and core.parse_cookies(headers.cookie) or {}
  local method = ngx.req.get_method()
  local body = ""
  if method ~= "GET" and method ~= "HEAD" then
    ngx.req.read_body()
    body = ngx.req.get_body_data()
    if not body then
      if ngx.req.get_body_file() then return nil, plain(413, "413 Payload Too Large\n") end
      body = ""
    end
  end
  return { method = method, path = path, query = query, args = args, headers = headers,
    cookies = cookies or {}, body = body, remote_addr = ngx.var.remote_addr,
    remote_port = tonumber(ngx.var.remote_port) }
end

local DROPPED = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true, date = true }

-- respond(res, method): writes the handler's response.
function M.respond(res, method)
  local status = math.floor(tonumber(res.status) or 200)
  ngx.status = status
  for name, value in pairs(res.headers or {}) do
    if not DROPPED[name:lower()] then ngx.header[name] = value end
  end
  local body = (status == 204 or status == 304) and "" or tostring(res.body or "")
  ngx.header["Content-Length"] = #body
  ngx.send_headers() -- never ngx.exit(status): nginx would write its own error page
  if method ~= "HEAD" and body ~= "" then ngx.print(body) end
end

-- handle() — content_by_lua: one request through the app's routes.  A
-- handler that raises answers a generic 500 (the traceback, redacted, goes
-- to the error log).
function M.handle()
  local req, refused = M.request()
  local res = refused
  if req then
    local ok, r = xpcall(S.dispatch, debug.traceback, req)
    if ok and type(r) == "table" then
      res = r
    else
      S.log("stripe_connect: handler failed: " .. tostring(ok and "the handler answered no response table" or r))
      res = plain(500, "500 Internal Server Error\n")
    end
  end
  return M.respond(res, req and req.method or ngx.req.get_method())
end

return M
