-- spec/support/platform.lua — the platform app and the fake Connect started
-- against each other on loopback for integration specs, plus the steps of a
-- browser's Connect flow.
--
--   local platform = require "support.platform"
--   local p = platform.start{ env = { STATE_TTL = "1" }, workers = 2, admin = true }
--   p.url, p.fake.url, p.port, p.dir (temp folder with connect.db)
--   local b = http.browser()
--   local auth = p:begin(b)                   -- GET /connect → the authorize URL (parsed)
--   local cb = p:decide(auth, "approve")      -- the fake's consent form → callback URL
--   local res = b:get(cb)                     -- GET /oauth/callback
--   p:connect(b)                              -- all three; answers res, callback URL
--   p:prepare_callback()                      -- /connect and approve: callback path, cookie
--   p:token_calls()                           -- authorization_code calls seen by the fake
--   p:restart() / p:kill9_restart()           -- same port, same database and secrets
--   p:stop()
--
--   platform.start{ hosts = 2, database = "postgres://…" }: two hosts (same
--   secrets, same DATABASE, ports of their own) behind a real nginx
--   round-robin load balancer (support.nginx) on p.port / p.url (the
--   PUBLIC_URL); p.hosts[i] = { url =, port =, server = } reaches one host.
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local server = require "support.server"
local http = require "support.http"
local files = require "support.files"
local nginx = require "support.nginx"

local M = {}

M.SECRET_KEY = "sk_test_platform_spec_key"
M.CLIENT_ID = "ca_platform_spec_client"
M.WEBHOOK_SECRET = "whsec_platform_spec_secret"
M.ADMIN_TOKEN = "admin-token-for-the-platform-specs"
M.STATE_SECRETS = "k1:" .. ("s"):rep(40)
M.TOKEN_KEYS = "t1:" .. core.base64_encode(("k"):rep(32))

local P = {}
P.__index = P

-- start{ env = {…} (platform env overrides; false removes), workers = N,
--        admin = true (default) | false, fake = true (default),
--        hosts = N (default 1; more: behind nginx), database = URL,
--        target = "host" (default: `stripe-connect serve scripts/platform.lua`)
--               | "nginx" (scripts/openresty/serve: the same app inside nginx),
--        args = { more serve options } }
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({ dir = files.tmpdir(), workers = opts.workers or 1, target = opts.target or "host",
    serve_args = opts.args }, P)
  self.port = server.free_port()
  if (opts.hosts or 1) > 1 then
    self.hosts = {}
    for i = 1, opts.hosts do
      local port = server.free_port()
      self.hosts[i] = { port = port, url = "http://127.0.0.1:" .. port }
    end
  end
  self.url = "http://127.0.0.1:" .. self.port
  self.fake = server.start{ app = "scripts/fake_connect.lua", args = { "--workers", "1" }, env = {
    FAKE_CLIENT_ID = M.CLIENT_ID, FAKE_SECRET_KEY = M.SECRET_KEY,
    FAKE_REDIRECT_URIS = self.url .. "/oauth/callback",
    FAKE_WEBHOOK_URL = self.url .. "/webhooks", FAKE_WEBHOOK_SECRETS = M.WEBHOOK_SECRET,
  } }
  self.env = {
    STRIPE_SECRET_KEY = M.SECRET_KEY, STRIPE_CLIENT_ID = M.CLIENT_ID, PUBLIC_URL = self.url,
    STRIPE_CONNECT_BASE = self.fake.url, STRIPE_API_BASE = self.fake.url,
    STATE_SECRETS = M.STATE_SECRETS, DATABASE = opts.database or ("sqlite:" .. self.dir .. "/connect.db"),
    ADMIN_TOKEN = M.ADMIN_TOKEN, STRIPE_WEBHOOK_SECRETS = M.WEBHOOK_SECRET, STRIPE_TIMEOUT = "5",
    -- every spec talks from 127.0.0.1: a bucket the specs cannot empty
    -- (the limiter still runs); the rate limit spec sets its own
    RATE_LIMIT = "1000000/1000000",
    TOKEN_KEYS = M.TOKEN_KEYS,
  }
  if opts.admin == false then self.env.ADMIN_TOKEN = nil end
  for k, v in pairs(opts.env or {}) do
    if v == false then self.env[k] = nil else self.env[k] = v end
  end
  self:start_platform()
  return self
end

function P:start_platform()
  assert(self.target == "host" or self.target == "nginx", "platform.start: target is host or nginx")
  local function args_for(port)
    local args = { "--listen", "127.0.0.1:" .. port, "--workers", tostring(self.workers) }
    for _, a in ipairs(self.serve_args or {}) do args[#args + 1] = a end
    return args
  end
  if self.hosts then
    local ports = {}
    for i, h in ipairs(self.hosts) do
      h.server = server.start{ app = "scripts/platform.lua", env = self.env, args = args_for(h.port) }
      ports[i] = h.port
    end
    self.platform = self.hosts[1].server
    self.lb = self.lb or nginx.start{ port = self.port, upstreams = ports }
    return
  end
  self.platform = server.start{ app = "scripts/platform.lua", env = self.env,
    launcher = self.target == "nginx" and "scripts/openresty/serve" or nil, ready_timeout = 20,
    args = args_for(self.port) }
end

function P:restart()
  self.platform:stop()
  self:start_platform()
end

function P:kill9_restart()
  self.platform:kill()
  self:start_platform()
end

function P:stop()
  if self.lb then self.lb:stop() end
  for _, h in ipairs(self.hosts or {}) do
    if h.server and h.server ~= self.platform then h.server:stop() end
  end
  if self.platform then self.platform:stop() end
  if self.fake then self.fake:stop() end
  files.rmdir(self.dir)
end

local function parse_query(url)
  local q = url:match("%?(.*)$") or ""
  return assert(core.parse_query(q))
end
M.parse_query = parse_query

-- begin(browser, path) -> { url = authorize URL, args = its query } after
-- GET /connect (path default "/connect").
function P:begin(b, path)
  local res = assert(b:get(self.url .. (path or "/connect")))
  assert(res.status == 302, "GET /connect answered " .. tostring(res.status))
  local loc = res.headers["location"]
  return { url = loc, args = parse_query(loc), res = res }
end

-- decide(auth, decision, account) -> the callback URL the fake redirects to.
function P:decide(auth, decision, account)
  local page = assert(http.get(auth.url))
  assert(page.status == 200, "fake authorize page answered " .. tostring(page.status) .. ": " .. tostring(page.body))
  local fields = {}
  for k, v in pairs(auth.args) do fields[k] = v end
  fields.decision = decision or "approve"
  fields.account = account
  local res = assert(http.post_form(self.fake.url .. "/oauth/authorize/decide", fields))
  assert(res.status == 302, "fake decide answered " .. tostring(res.status) .. ": " .. tostring(res.body))
  return res.headers["location"]
end

-- connect(browser, opts) -> callback response, callback URL.
-- opts.decision ("approve"), opts.account, opts.path ("/connect").
function P:connect(b, opts)
  opts = opts or {}
  local cb = self:decide(self:begin(b, opts.path), opts.decision, opts.account)
  return assert(b:get(cb)), cb
end

-- prepare_callback() -> the callback's path (with code and state) and the
-- browser's Cookie header: a flow taken up to the callback, for specs that
-- send the callback themselves (support.wire).
function P:prepare_callback()
  local b = http.browser()
  local cb = self:decide(self:begin(b), "approve")
  return cb:match("^https?://[^/]+(/.*)$"), b:cookie_header()
end

-- The fake's request log (array of records).
function P:fake_requests()
  local res = assert(http.get(self.fake.url .. "/__fake/requests"))
  return cjson.decode(res.body).data
end

-- token_calls() -> number of authorization_code exchanges the fake saw.
function P:token_calls()
  local n = 0
  for _, r in ipairs(self:fake_requests()) do
    if r.path == "/oauth/token" and r.grant_type == "authorization_code" then n = n + 1 end
  end
  return n
end

-- fault{ path=, status=, delay=, count= } -> injects a fault into the fake.
function P:fault(f)
  local fields = {}
  for k, v in pairs(f) do fields[k] = tostring(v) end
  local res = assert(http.post_form(self.fake.url .. "/__fake/faults", fields))
  assert(res.status == 200, "fault: " .. tostring(res.body))
end

-- metric_value(text, series) -> the number of the exposition line
-- `series value` in /metrics text, or nil.
function M.metric_value(text, series)
  for line in text:gmatch("[^\n]+") do
    local s, v = line:match("^(.-) (%S+)$")
    if s == series then return tonumber(v) end
  end
  return nil
end

-- with_store(fn) -> fn(store) on a store of the platform's own database
-- (SQLite WAL: each sees the other's commits), closed afterwards.
function P:with_store(fn)
  local s = assert(require("stripe_connect.store").open(self.env.DATABASE))
  local ok, err = pcall(fn, s)
  s:close()
  if not ok then error(err, 0) end
end

-- admin(method, path, token) -> status, decoded JSON (or raw body)
function P:admin(method, path, token)
  local headers = {}
  if token ~= false then headers.Authorization = "Bearer " .. (token or M.ADMIN_TOKEN) end
  local res = assert(http.request{ method = method, url = self.url .. path, headers = headers,
    body = method == "POST" and "" or nil })
  return res.status, cjson.decode(res.body) or res.body, res
end

-- script(name, args) -> exit code, stdout: runs scripts/NAME.lua under the
-- host with the platform's environment.
function P:script(name, args)
  local env = {}
  for k, v in pairs(self.env) do env[#env + 1] = "'" .. k .. "=" .. v:gsub("'", "'\\''") .. "'" end
  local out = os.tmpname()
  local cmd = "env " .. table.concat(env, " ") .. " build/stripe-connect run scripts/" .. name .. ".lua " ..
    (args or "") .. " > " .. out .. " 2>&1"
  local ok, _, code = os.execute(cmd)
  local text = files.read(out) or ""
  os.remove(out)
  server.keep_log("script-" .. name, text, self.env)
  return ok and 0 or code, text
end

return M
