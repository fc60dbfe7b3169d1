-- scripts/bench/soak.lua — `make soak`: the platform under a mix of its
-- routes for SOAK_DURATION seconds (default 300) on loopback with wrk, in
-- five equal segments (a fresh wrk run each, with states and signed events
-- made just before it: a signature is good for 300 s).  Reports the answers
-- by kind, the errors (socket errors and unexpected answers; must be 0) and
-- the server's VmRSS at the end of each segment (each minute by default);
-- the growth from the first sample to the last must stay under 5%.
--
--   build/stripe-connect run scripts/bench/soak.lua     (make soak)
--
-- The mix on every connection (SOAK_MIX, see scripts/bench/soak_wrk.lua):
-- GET /connect, GET /oauth/callback (a fresh state each; the token endpoint
-- is an nginx stand-in naming one of 16 accounts), POST /webhooks (signed
-- account.updated and account.application.deauthorized events for those
-- accounts, unique ids), GET /admin/accounts and /admin/accounts/{id}.
--
-- Settings (environment): SOAK_DURATION (seconds, default 300),
-- SOAK_CONNECTIONS (wrk -c, default 32), SOAK_THREADS (wrk -t, default 2),
-- SOAK_WORKERS (serve --workers, default 2), SOAK_MIX, SOAK_BIN (default
-- build/stripe-connect), SOAK_KEEP=1 (keep the temp folder), SOAK_SERVER_ENV
-- ("NAME=value NAME=value": added to the server's environment, e.g. a rate
-- limit setting).  Exit status 0 when errors are 0 and the growth < 5%.
local core = require "stripe_connect.core"
local socket = require "socket"

local common = dofile("scripts/bench/common.lua")
local q, sh, read, alive = common.q, common.sh, common.read, common.alive
local free_port, token = common.free_port, common.random_token
local function env_number(name, default) return common.env_number("soak", name, default) end

local DURATION = env_number("SOAK_DURATION", 300)
local CONNECTIONS = math.floor(env_number("SOAK_CONNECTIONS", 32))
local THREADS = math.floor(env_number("SOAK_THREADS", 2))
local WORKERS = math.floor(env_number("SOAK_WORKERS", 2))
local MIX = os.getenv("SOAK_MIX") or "cbwcbwcbwai"
local BIN = os.getenv("SOAK_BIN") or "build/stripe-connect"
local KEEP = os.getenv("SOAK_KEEP") == "1"
local SEGMENTS = 5
local SEGMENT = DURATION / SEGMENTS
local MAX_GROWTH = 0.05

local function log(fmt, ...) io.stderr:write("soak: ", string.format(fmt, ...), "\n") end

local tmp = assert(sh("mktemp -d /tmp/stripe-connect-soak.XXXXXX"):match("^(%S+)"))
local procs = {}

-- spawn(name, cmd, env) -> pid; output to tmp/NAME.log.
local function spawn(name, cmd, env)
  local pid = common.launch(tmp, name, cmd, env)
  procs[#procs + 1] = pid
  return pid
end

local function wait_port(name, pid, port)
  local ok, why = common.wait_port(pid, port, 30)
  if ok then return end
  if why == "exited" then error(name .. " exited:\n" .. (read(tmp .. "/" .. name .. ".log") or ""), 0) end
  error(name .. " did not listen on " .. port, 0)
end

local function stop_all()
  for _, pid in ipairs(procs) do os.execute("kill -TERM " .. pid .. " 2>/dev/null") end
  for _, pid in ipairs(procs) do
    local deadline = socket.gettime() + 15
    while alive(pid) and socket.gettime() < deadline do core.sleep(0.05) end
    if alive(pid) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  end
end

local function rss_kib(pid)
  return tonumber((read("/proc/" .. pid .. "/status") or ""):match("VmRSS:%s*(%d+)"))
end

-- ------------------------------------------------------------ the settings

local SECRETS = {
  key = "sk_test_soak" .. token(18), client = "ca_soak" .. token(18), state = "soak:" .. token(32),
  webhook = "whsec_soak" .. token(24), admin = token(24),
}
local ACCOUNTS = {}
for i = 0, 15 do ACCOUNTS[#ACCOUNTS + 1] = string.format("acct_1Soak%x", i) end

-- The one place the server's environment is made (add settings here, or
-- through SOAK_SERVER_ENV).
local function server_env(port, standin)
  local env = {
    STRIPE_SECRET_KEY = SECRETS.key, STRIPE_CLIENT_ID = SECRETS.client,
    PUBLIC_URL = "http://127.0.0.1:" .. port, STATE_SECRETS = SECRETS.state,
    STRIPE_WEBHOOK_SECRETS = SECRETS.webhook, ADMIN_TOKEN = SECRETS.admin,
    STRIPE_CONNECT_BASE = "http://127.0.0.1:" .. standin, STRIPE_API_BASE = "http://127.0.0.1:" .. standin,
    DATABASE = "sqlite:" .. tmp .. "/connect.db",
  }
  for k, v in (os.getenv("SOAK_SERVER_ENV") or ""):gmatch("([%w_]+)=(%S*)") do env[k] = v end
  return env
end

-- The token stand-in: nginx answering POST /oauth/token for one of the 16
-- accounts (the last hex digit of nginx's $request_id picks it).
local function start_standin(port)
  local body = '{"access_token":"sk_test_standin' .. token(18) .. '","livemode":false,"refresh_token":"rt_standin' ..
    token(18) .. '","token_type":"bearer","stripe_publishable_key":"pk_test_standin' .. token(18) ..
    '","stripe_user_id":"$soak_account","scope":"read_write"}'
  local d = common.nginx_conf(tmp .. "/nginx", 1, table.concat({
    "  map $request_id $soak_account { \"~(?<last>.)$\" acct_1Soak$last; }",
    "  server {", "    listen 127.0.0.1:" .. port .. ";", "    default_type application/json;",
    "    location = /oauth/token { return 200 '" .. body .. "'; }",
    "    location / { return 404 '{\"error\":\"not_found\"}'; }", "  }",
  }, "\n"))
  wait_port("standin", spawn("standin", common.nginx_command(d)), port)
end

-- fixtures(segment, n) -> states file, events file (n lines each).
local function fixtures(segment, n)
  local env = "env " .. q("STATE_SECRETS=" .. SECRETS.state) .. " " .. q("STRIPE_WEBHOOK_SECRETS=" .. SECRETS.webhook)
  local states, events = tmp .. "/states", tmp .. "/events"
  for _, args in ipairs({ { "states", n, states },
      { "webhooks", n, events, "account.updated,account.application.deauthorized", table.concat(ACCOUNTS, ","),
        "soak" .. segment } }) do
    for i, a in ipairs(args) do args[i] = q(a) end
    local out, code = sh(env .. " " .. q(BIN) .. " run scripts/bench/fixtures.lua " .. table.concat(args, " "))
    if code ~= 0 then error("fixtures failed:\n" .. out, 0) end
  end
  return states, events
end

-- connect_first(port): callbacks one by one until ACCOUNTS[1] (the one the
-- `i` requests read) is connected, so those answer 200 from the start.
local function connect_first(port)
  local state = require "stripe_connect.state"
  local kr = assert(state.keyring(SECRETS.state))
  local base = "http://127.0.0.1:" .. port
  for _ = 1, 1000 do
    local binding = state.new_binding()
    local res = core.http_request{ method = "GET", headers = { Cookie = "sc_bind=" .. binding },
      url = base .. "/oauth/callback?code=ac_soak&state=" .. state.mint(kr, { binding = binding }) }
    if not res or res.status ~= 303 then error("a first callback failed: " .. tostring(res and res.status), 0) end
    local got = core.http_request{ method = "GET", url = base .. "/admin/accounts/" .. ACCOUNTS[1],
      headers = { Authorization = "Bearer " .. SECRETS.admin } }
    if got and got.status == 200 then return end
  end
  error(ACCOUNTS[1] .. " was not connected after 1000 callbacks", 0)
end

local function parse(line)
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  return r
end

-- ------------------------------------------------------------ main

-- start_platform() -> the server's pid, its port: the stand-in and the
-- platform started, ACCOUNTS[1] connected.
local function start_platform()
  for _, cmd in ipairs({ "nginx", "wrk" }) do
    if select(2, sh("command -v " .. cmd)) ~= 0 then error(cmd .. " is not installed (make deps)", 0) end
  end
  local standin, port = free_port(), free_port()
  start_standin(standin)
  local server = spawn("platform", q(BIN) .. " serve scripts/platform.lua --listen 127.0.0.1:" .. port ..
    " --workers " .. WORKERS .. " --quiet", server_env(port, standin))
  wait_port("platform", server, port)
  connect_first(port)
  log("platform pid %s on port %d, %d workers; %d segments of %.0f s, wrk -t %d -c %d, mix %s",
    server, port, WORKERS, SEGMENTS, SEGMENT, THREADS, CONNECTIONS, MIX)
  return server, port
end

-- segment(seg, need, server, port) -> wrk's counts for one segment (need
-- lines per fixture file), with the server's VmRSS after it as rss.
local function segment(seg, need, server, port)
  local states, events = fixtures(seg, need)
  local vars = { "SOAK_THREADS=" .. THREADS, "SOAK_MIX=" .. MIX, "SOAK_STATES=" .. states,
    "SOAK_EVENTS=" .. events, "SOAK_ADMIN_TOKEN=" .. SECRETS.admin, "SOAK_ACCOUNT=" .. ACCOUNTS[1] }
  for i, v in ipairs(vars) do vars[i] = q(v) end
  local cmd = common.ULIMIT .. "; exec env " .. table.concat(vars, " ") .. " wrk -t " .. THREADS ..
    " -c " .. CONNECTIONS .. " -d " .. math.max(1, math.floor(SEGMENT + 0.5)) .. "s --timeout 10s -s " ..
    q("scripts/bench/soak_wrk.lua") .. " http://127.0.0.1:" .. port
  local p = assert(io.popen("sh -c " .. q(cmd) .. " 2>&1", "r"))
  local out = p:read("a")
  p:close()
  local line = out:match("soak: [^\n]*")
  if not line then error("wrk failed:\n" .. out:sub(-2000), 0) end
  if not alive(server) then error("the platform exited:\n" .. (read(tmp .. "/platform.log") or ""):sub(-2000), 0) end
  local r = parse(line)
  r.rss = rss_kib(server)
  log("segment %d: %d requests (%d/s), connect %d, callback %d, webhook %d, admin %d, unexpected %d, " ..
    "socket errors %d, exhausted %d, VmRSS %d KiB%s", seg, r.requests, r.requests // SEGMENT, r.connect, r.callback,
    r.webhook, r.admin, r.unexpected, r.errors_connect + r.errors_read + r.errors_write + r.errors_timeout,
    r.exhausted, r.rss, r.statuses ~= "-" and (" (unexpected statuses " .. r.statuses .. ")") or "")
  return r
end

-- report(total, rows) -> whether the soak passed, having printed its summary.
local function report(total, rows)
  local socket_errors = total.errors_connect + total.errors_read + total.errors_write + total.errors_timeout
  -- wrk's status errors are answers >= 400: each is also unexpected here.
  local errors = socket_errors + total.unexpected
  local growth = (rows[SEGMENTS].rss - rows[1].rss) / rows[1].rss
  local samples = {}
  for i, r in ipairs(rows) do samples[i] = string.format("%.1f", r.rss / 1024) end
  print(table.concat({
    string.format("soak: %.0f s, %d requests (%.0f/s): connect %d, callback %d, webhook %d (%d duplicate), admin %d; " ..
      "exhausted fixtures %d", DURATION, total.requests, total.requests / DURATION, total.connect, total.callback,
      total.webhook, total.duplicate, total.admin, total.exhausted),
    string.format("soak: errors %d (socket: connect %d, read %d, write %d, timeout %d; unexpected answers %d%s)",
      errors, total.errors_connect, total.errors_read, total.errors_write, total.errors_timeout, total.unexpected,
      total.unexpected > 0 and (": see the statuses per segment") or ""),
    string.format("soak: VmRSS MiB at the end of each segment: %s; growth from the first to the last: %+.2f%%",
      table.concat(samples, ", "), growth * 100),
  }, "\n"))
  for i, r in ipairs(rows) do
    if r.statuses ~= "-" then print(string.format("soak: segment %d unexpected statuses %s", i, r.statuses)) end
  end
  return errors == 0 and growth < MAX_GROWTH
end

local function main()
  local server, port = start_platform()
  -- Lines per fixture file: 2000/s (more than this machine serves of either
  -- kind), doubled after a segment that ran out, up to 8000/s; making them
  -- takes about 5 s per 100,000 of each.
  local need = math.ceil(2000 * SEGMENT)
  local total, rows = {}, {}
  for seg = 1, SEGMENTS do
    local r = segment(seg, need, server, port)
    rows[seg] = r
    for k, v in pairs(r) do if type(v) == "number" then total[k] = (total[k] or 0) + v end end
    if r.exhausted > 0 then need = math.min(2 * need, math.ceil(8000 * SEGMENT)) end
  end
  return report(total, rows)
end

local ok, result = pcall(main)
stop_all()
if KEEP then log("kept %s", tmp) else os.execute("rm -rf " .. q(tmp)) end
if not ok then
  io.stderr:write("soak: ", tostring(result), "\n")
  os.exit(2)
end
if not result then
  print("soak: FAILED (errors must be 0 and the RSS growth under 5%)")
  os.exit(1)
end
print("soak: ok")
