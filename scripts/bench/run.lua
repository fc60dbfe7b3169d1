-- scripts/bench/run.lua — `make bench`: the platform's hot routes under wrk,
-- side by side with nginx's static 302 (the ceiling) and the same routes in
-- Express 5 + stripe-node + better-sqlite3 (scripts/bench/peer-express/).
--
--   build/stripe-connect run scripts/bench/run.lua
--
-- Needs nginx, libnginx-mod-http-echo and wrk (Debian; `make deps`), node and
-- npm (the peer's packages are installed once into BENCH_NODE_DIR from the npm
-- registry, better-sqlite3 built from source against node's own headers).
-- Every server runs on 127.0.0.1 with ports of its own, from a temporary
-- folder; nothing of the system nginx is used.  Each row gets a fresh server
-- (and a fresh database), so each row's peak RSS is its own.
--
-- Settings (environment):
--   BENCH_DURATION          seconds per row (default 10)
--   BENCH_CONNECTIONS       wrk -c (default 64)
--   BENCH_THREADS           wrk -t (default 2)
--   BENCH_SLOW_CONNECTIONS  wrk -c of the slow-Stripe rows (default 1000)
--   BENCH_WARMUP            seconds of load before each row's measured run, on
--                           the same server with its own states/events (default
--                           2; 0: none; none in request-count mode)
--   BENCH_REQUESTS          request-count mode: each row stops after about this
--                           many answers (BENCH_DURATION is then an upper bound);
--                           turns on BENCH_CHECK
--   BENCH_CHECK=1           count answers whose status is not the route's
--                           expected one (302, 303, 200) as errors (a wrk
--                           response hook: costs the load generator CPU)
--   BENCH_PAIRS             states / events made per fixture file
--                           (default 30000 per second of BENCH_WARMUP + BENCH_DURATION)
--   BENCH_ROWS              comma list of row ids to run (default: all; see ROWS)
--   BENCH_OUT               the Markdown file (default build/bench.md)
--   BENCH_BIN               the host binary (default build/stripe-connect)
--   BENCH_NODE_DIR          the peer's npm folder (default build/bench/peer-node)
--   BENCH_KEEP=1            keep the temporary folder (logs, configs, fixtures)
--   PG_BIN                  PostgreSQL's server binaries for the postgres row
--                           (default /usr/lib/postgresql/15/bin: Debian's postgresql)
--   BENCH_PG_FSYNC=off      run that PostgreSQL with fsync=off (default: its own
--                           durable defaults, every commit flushed)
--   BENCH_OURS_PREFIX       a command put before ours, e.g. to profile a row:
--                           "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p"
--
-- Output: a Markdown table on stdout and in BENCH_OUT.  Exit status 1 when a
-- row could not run (its cells say why), 0 otherwise.
local core = require "stripe_connect.core"
local socket = require "socket"

local common = dofile("scripts/bench/common.lua")
local q, sh, read, write = common.q, common.sh, common.read, common.write
local free_port, random_token, alive, ULIMIT = common.free_port, common.random_token, common.alive, common.ULIMIT
local function env_number(name, default) return common.env_number("bench", name, default) end

local DURATION = env_number("BENCH_DURATION", 10)
local CONNECTIONS = math.floor(env_number("BENCH_CONNECTIONS", 64))
local THREADS = math.floor(env_number("BENCH_THREADS", 2))
local SLOW_CONNECTIONS = math.floor(env_number("BENCH_SLOW_CONNECTIONS", 1000))
local REQUESTS = os.getenv("BENCH_REQUESTS") and math.floor(env_number("BENCH_REQUESTS", 1)) or nil
local CHECK = REQUESTS ~= nil or os.getenv("BENCH_CHECK") == "1"
local WARMUP = REQUESTS and 0 or (os.getenv("BENCH_WARMUP") == "0" and 0 or env_number("BENCH_WARMUP", 2))
local PAIRS = math.floor(env_number("BENCH_PAIRS",
  REQUESTS and math.max(1000, 2 * REQUESTS + 2 * SLOW_CONNECTIONS) or 30000 * (DURATION + WARMUP)))
local OUT = os.getenv("BENCH_OUT") or "build/bench.md"
local BIN = os.getenv("BENCH_BIN") or "build/stripe-connect"
local NODE_DIR = os.getenv("BENCH_NODE_DIR") or "build/bench/peer-node"
local KEEP = os.getenv("BENCH_KEEP") == "1"
-- A command put before ours (profiling: "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p").
local PREFIX = os.getenv("BENCH_OURS_PREFIX") and (os.getenv("BENCH_OURS_PREFIX") .. " ") or ""
local SLOW_SECONDS = 0.2
local HERE = "scripts/bench"

if THREADS > CONNECTIONS or THREADS > SLOW_CONNECTIONS then
  io.stderr:write("bench: BENCH_THREADS must not exceed the connections\n")
  os.exit(2)
end

-- ------------------------------------------------------------ the shell

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function log(fmt, ...) io.stderr:write("bench: ", string.format(fmt, ...), "\n") end

local function have(cmd) return select(2, sh("command -v " .. q(cmd))) == 0 end

local driver_pid = (function()
  local p = io.popen("echo $PPID")
  local pid = p:read("l")
  p:close()
  return pid
end)()

-- ------------------------------------------------------------ processes

local tmp = assert(sh("mktemp -d /tmp/stripe-connect-bench.XXXXXX"):match("^(%S+)"))
local running = {}

local function wait_dead(pid, timeout)
  local deadline = socket.gettime() + timeout
  while alive(pid) do
    if socket.gettime() > deadline then return false end
    core.sleep(0.05)
  end
  return true
end

-- spawn(name, cmd, env) -> process { name, pid, log }.  cmd is a shell
-- command line; env a table of NAME = value.  A watchdog stops the process if
-- this script dies first.
local function spawn(name, cmd, env)
  local pid, logfile = common.launch(tmp, name, cmd, env)
  os.execute("sh -c " .. q("(while kill -0 " .. driver_pid .. " && kill -0 " .. pid .. "; do sleep 1; done; " ..
    "kill -0 " .. driver_pid .. " || { kill -TERM " .. pid .. "; sleep 5; kill -KILL " .. pid .. "; }) " ..
    ">/dev/null 2>&1 &"))
  local proc = { name = name, pid = pid, log = logfile }
  running[pid] = proc
  return proc
end

local function log_tail(proc)
  local text = read(proc.log) or ""
  return text:sub(-1500)
end

-- wait_port(proc, port): until something accepts on 127.0.0.1:port.
local function wait_port(proc, port, timeout)
  local ok, why = common.wait_port(proc.pid, port, timeout or 30)
  if ok then return end
  if why == "exited" then error(proc.name .. " exited before listening:\n" .. log_tail(proc), 0) end
  error(proc.name .. " did not listen on port " .. port .. " in time:\n" .. log_tail(proc), 0)
end

local function stop(proc)
  if not proc or not running[proc.pid] then return end
  running[proc.pid] = nil
  os.execute("kill -TERM " .. proc.pid .. " 2>/dev/null")
  if not wait_dead(proc.pid, 15) then
    os.execute("kill -KILL " .. proc.pid .. " 2>/dev/null")
    wait_dead(proc.pid, 5)
  end
end

local function stop_all()
  for _, proc in pairs(running) do stop(proc) end
end

-- peak_rss(pid) -> KiB: VmHWM summed over the process and its descendants.
local function peak_rss(pid)
  local children = {}
  local stats = sh("cat /proc/[0-9]*/stat 2>/dev/null")
  for line in stats:gmatch("[^\n]+") do
    local p, ppid = line:match("^(%d+) %(.*%) %a (%d+)")
    if p then
      children[ppid] = children[ppid] or {}
      table.insert(children[ppid], p)
    end
  end
  local total, todo = 0, { tostring(pid) }
  while #todo > 0 do
    local p = table.remove(todo)
    local status = read("/proc/" .. p .. "/status") or ""
    total = total + (tonumber(status:match("VmHWM:%s*(%d+)")) or 0)
    for _, c in ipairs(children[p] or {}) do todo[#todo + 1] = c end
  end
  return total
end

-- ------------------------------------------------------------ the settings the servers share

local SECRET_KEY = "sk_test_bench" .. random_token(18)
local CLIENT_ID = "ca_bench" .. random_token(18)
local STATE_SECRETS = "bench:" .. random_token(32)
local WEBHOOK_SECRET = "whsec_bench" .. random_token(24)
local ACCOUNT_ID = "acct_1BenchStandIn00"

-- What Stripe's POST /oauth/token answers for an authorization code.
local TOKEN_JSON = string.format(
  '{"access_token":"sk_test_standin%s","livemode":false,"refresh_token":"rt_standin%s",' ..
  '"token_type":"bearer","stripe_publishable_key":"pk_test_standin%s","stripe_user_id":"%s",' ..
  '"scope":"read_write"}', random_token(18), random_token(18), random_token(18), ACCOUNT_ID)

-- ------------------------------------------------------------ nginx

local ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

local function nginx_conf(name, workers, servers, modules)
  return common.nginx_conf(tmp .. "/" .. name, workers, servers, modules)
end

local function start_nginx(name, workers, servers, ports, modules)
  local d = nginx_conf(name, workers, servers, modules)
  local proc = spawn(name, common.nginx_command(d))
  for _, port in ipairs(ports) do wait_port(proc, port) end
  return proc
end

-- ------------------------------------------------------------ the rows

-- id, group (the route), server, database, mode, path, expected status, slow
local ROWS = {
  { id = "ceiling", group = "connect", server = "nginx", mode = "get", path = "/connect", expect = 302 },
  { id = "ours-connect-sqlite", group = "connect", server = "ours", db = "sqlite", mode = "get", path = "/connect", expect = 302 },
  { id = "ours-connect-memory", group = "connect", server = "ours", db = "memory", mode = "get", path = "/connect", expect = 302 },
  { id = "nginx-connect-sqlite", group = "connect", server = "openresty", db = "sqlite", mode = "get", path = "/connect", expect = 302 },
  { id = "peer-connect", group = "connect", server = "peer", db = "sqlite", mode = "get", path = "/connect", expect = 302 },
  { id = "ours-callback-sqlite", group = "callback", server = "ours", db = "sqlite", mode = "callback", expect = 303 },
  { id = "ours-callback-memory", group = "callback", server = "ours", db = "memory", mode = "callback", expect = 303 },
  { id = "ours-callback-postgres-2hosts", group = "callback", server = "ours", db = "postgres", hosts = 2,
    mode = "callback", expect = 303 },
  { id = "nginx-callback-sqlite", group = "callback", server = "openresty", db = "sqlite", mode = "callback", expect = 303 },
  { id = "peer-callback", group = "callback", server = "peer", db = "sqlite", mode = "callback", expect = 303 },
  { id = "ours-webhooks-sqlite", group = "webhooks", server = "ours", db = "sqlite", mode = "webhook", expect = 200 },
  { id = "ours-webhooks-memory", group = "webhooks", server = "ours", db = "memory", mode = "webhook", expect = 200 },
  { id = "peer-webhooks", group = "webhooks", server = "peer", db = "sqlite", mode = "webhook", expect = 200 },
  { id = "ours-slow-sqlite", group = "slow", server = "ours", db = "sqlite", mode = "callback", expect = 303, slow = true },
  { id = "peer-slow", group = "slow", server = "peer", db = "sqlite", mode = "callback", expect = 303, slow = true },
}

local GROUP_LABEL = {
  connect = "`GET /connect`",
  callback = "`GET /oauth/callback` (fresh state each)",
  webhooks = "`POST /webhooks` (valid signature)",
  slow = "slow Stripe: %d concurrent callbacks, token endpoint answering in 200 ms",
}

local selected
do
  local list = os.getenv("BENCH_ROWS")
  if list and list ~= "" then
    selected = {}
    local known = {}
    for _, r in ipairs(ROWS) do known[r.id] = true end
    for id in list:gmatch("[^,%s]+") do
      if not known[id] then
        io.stderr:write("bench: BENCH_ROWS: unknown row ", id, "\n")
        os.exit(2)
      end
      selected[id] = true
    end
  end
end

local function wanted(row) return selected == nil or selected[row.id] end

-- ------------------------------------------------------------ checks before starting

local problems = {}
for _, cmd in ipairs({ "nginx", "wrk", "node", "npm" }) do
  if not have(cmd) then problems[#problems + 1] = cmd .. " is not installed" end
end
if not exists(ECHO_MODULE) then problems[#problems + 1] = ECHO_MODULE .. " is missing (libnginx-mod-http-echo)" end
if not exists(BIN) then problems[#problems + 1] = BIN .. " is missing (run make)" end
if #problems > 0 then
  io.stderr:write("bench: cannot run: " .. table.concat(problems, "; ") ..
    " (make deps installs the Debian packages; node and npm must be on the PATH)\n")
  os.execute("rm -rf " .. q(tmp))
  os.exit(2)
end

-- ------------------------------------------------------------ the peer's packages

-- install_peer(): npm install of scripts/bench/peer-express/package.json (and
-- its lock) into NODE_DIR, once (again when the package files change).
-- better-sqlite3 is built from source against node's own headers
-- (npm_config_nodedir), so nothing is fetched but npm registry packages: its
-- install script would otherwise try a prebuilt binary from GitHub and then
-- node-gyp would download the headers from nodejs.org.
local function install_peer()
  local src = HERE .. "/peer-express"
  local same = read(src .. "/package.json") == read(NODE_DIR .. "/package.json")
    and read(src .. "/package-lock.json") == read(NODE_DIR .. "/package-lock.json")
    and exists(NODE_DIR .. "/node_modules/.bench-installed")
  if same then return end
  log("installing the peer's npm packages into %s (once; better-sqlite3 builds from source)", NODE_DIR)
  os.execute("mkdir -p " .. q(NODE_DIR))
  os.execute("rm -f " .. q(NODE_DIR .. "/node_modules/.bench-installed"))
  assert(os.execute("cp " .. q(src .. "/package.json") .. " " .. q(src .. "/package-lock.json") .. " " .. q(NODE_DIR .. "/")))
  local node_prefix = sh("node -p 'require(\"path\").resolve(process.execPath, \"../..\")'"):match("^(%S+)")
  local nodedir = ""
  if node_prefix and exists(node_prefix .. "/include/node/node_version.h") then
    nodedir = "npm_config_nodedir=" .. q(node_prefix) .. " "
  else
    log("node's headers are not under %s/include/node: node-gyp may try to download them", tostring(node_prefix))
  end
  local cmd = "cd " .. q(NODE_DIR) .. " && env " .. nodedir .. "npm_config_build_from_source=true " ..
    "npm ci --no-audit --no-fund --loglevel=error"
  local out, code = sh(cmd)
  if code ~= 0 then error("the peer's npm install failed (" .. cmd .. "):\n" .. out:sub(-3000), 0) end
  write(NODE_DIR .. "/node_modules/.bench-installed", "")
end

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  return (os.getenv("PWD") or sh("pwd"):match("^(%S+)")) .. "/" .. p
end

-- ------------------------------------------------------------ fixtures

local fixture_env = { STATE_SECRETS = STATE_SECRETS, STRIPE_WEBHOOK_SECRETS = WEBHOOK_SECRET }

local function fixtures(kind, n, file)
  local vars = {}
  for k, v in pairs(fixture_env) do vars[#vars + 1] = q(k .. "=" .. v) end
  local out, code = sh("env " .. table.concat(vars, " ") .. " " .. q(BIN) .. " run " .. q(HERE .. "/fixtures.lua") ..
    " " .. kind .. " " .. n .. " " .. q(file))
  if code ~= 0 then error("fixtures " .. kind .. " failed:\n" .. out, 0) end
  return file
end

local ours_states -- one file for all of ours' callback rows: each row's server has a fresh store

-- ------------------------------------------------------------ servers

local standin_fast, standin_slow

-- start_ours(row, name, port, public_url, database) -> process, port
local function start_ours(row, name, port, public_url, database)
  port = port or free_port()
  local env = {
    STRIPE_SECRET_KEY = SECRET_KEY, STRIPE_CLIENT_ID = CLIENT_ID,
    PUBLIC_URL = public_url or ("http://127.0.0.1:" .. port),
    STATE_SECRETS = STATE_SECRETS, STRIPE_WEBHOOK_SECRETS = WEBHOOK_SECRET,
    STRIPE_CONNECT_BASE = "http://127.0.0.1:" .. (row.slow and standin_slow or standin_fast),
    DATABASE = database or (row.db == "memory" and "memory:" or ("sqlite:" .. tmp .. "/" .. row.id .. ".db")),
    -- wrk sends everything from one address: the limiter stays on the
    -- measured path with a bucket no run can empty.
    RATE_LIMIT = "1000000000/1000000000",
    TOKEN_KEYS = "b1:" .. core.base64_encode(core.random_bytes(32)), -- tokens sealed, as in production
  }
  -- the nginx rows: the same app inside nginx through its launcher, 2 worker processes
  local serve = row.server == "openresty" and (q("scripts/openresty/serve") .. " --workers 2")
    or (PREFIX .. q(BIN) .. " serve " .. q("scripts/platform.lua"))
  local proc = spawn(name or row.id, serve .. " --listen 127.0.0.1:" .. port .. " --quiet", env)
  wait_port(proc, port)
  return proc, port
end

-- The PostgreSQL server of the postgres rows: started once, a fresh
-- database per row (the specs' throwaway server, spec/support/postgres.lua).
local pg

-- start_hosts(row) -> { processes }, port: row.hosts of ours on one
-- PostgreSQL database behind an nginx round-robin upstream (the port).
local function start_hosts(row)
  if not pg then
    package.path = "spec/?.lua;" .. package.path
    pg = require("support.postgres").start{ durable = os.getenv("BENCH_PG_FSYNC") ~= "off" }
  end
  local database = pg:fresh_url()
  local lb_port = free_port()
  local procs, upstream = {}, { "  upstream hosts {" }
  for i = 1, row.hosts do
    local proc, port = start_ours(row, row.id .. "-" .. i, nil, "http://127.0.0.1:" .. lb_port, database)
    procs[i] = proc
    upstream[#upstream + 1] = "    server 127.0.0.1:" .. port .. ";"
  end
  upstream[#upstream + 1] = "    keepalive 128;"
  upstream[#upstream + 1] = "  }"
  procs[#procs + 1] = start_nginx(row.id .. "-lb", 1, table.concat(upstream, "\n") .. "\n" .. table.concat({
    "  server {",
    "    listen 127.0.0.1:" .. lb_port .. ";",
    "    location / {",
    "      proxy_pass http://hosts;",
    "      proxy_http_version 1.1;",
    "      proxy_set_header Connection \"\";",
    "      proxy_set_header Host $http_host;",
    "    }",
    "  }",
  }, "\n"), { lb_port })
  return procs, lb_port
end

local function peer_env(row, port)
  return {
    PORT = port, NODE_ENV = "production", PEER_NODE_MODULES = abspath(NODE_DIR .. "/node_modules"),
    STRIPE_SECRET_KEY = SECRET_KEY, STRIPE_CLIENT_ID = CLIENT_ID,
    PUBLIC_URL = "http://127.0.0.1:" .. port,
    STRIPE_CONNECT_BASE = "http://127.0.0.1:" .. (row.slow and standin_slow or standin_fast),
    STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET,
    DATABASE = tmp .. "/" .. row.id .. ".db",
  }
end

local function start_peer(row, file)
  local port = free_port()
  local env = peer_env(row, port)
  if row.mode == "callback" then
    -- The peer's states live in its database: issue them there, as that many
    -- visits to its /connect would have.
    local out, code = sh("env " .. q("PEER_NODE_MODULES=" .. env.PEER_NODE_MODULES) .. " node " ..
      q(HERE .. "/peer-express/seed.js") .. " " .. q(env.DATABASE) .. " " .. PAIRS .. " " .. q(file))
    if code ~= 0 then error("seeding the peer's states failed:\n" .. out, 0) end
  end
  local proc = spawn(row.id, "node " .. q(HERE .. "/peer-express/server.js"), env)
  wait_port(proc, port)
  return proc, port
end

local function start_ceiling()
  local port = free_port()
  local proc = start_nginx("ceiling", "auto", table.concat({
    "  server {",
    "    listen 127.0.0.1:" .. port .. ";",
    "    location / { return 302 https://connect.stripe.com/oauth/authorize; }",
    "  }",
  }, "\n"), { port })
  return proc, port
end

-- ------------------------------------------------------------ wrk

-- run_wrk(row, port, file, opts) -> the numbers of one wrk run.
-- opts.duration (seconds), opts.skip (lines per thread already sent),
-- opts.measure (false for a warm-up: no status check, no request limit).
local function run_wrk(row, port, file, opts)
  local connections = row.slow and SLOW_CONNECTIONS or CONNECTIONS
  local vars = { "BENCH_MODE=" .. row.mode, "BENCH_THREADS=" .. THREADS, "BENCH_SKIP=" .. (opts.skip or 0) }
  if row.path then vars[#vars + 1] = "BENCH_PATH=" .. row.path end
  if file then vars[#vars + 1] = "BENCH_FILE=" .. file end
  if CHECK and opts.measure then vars[#vars + 1] = "BENCH_EXPECT=" .. row.expect end
  if REQUESTS and opts.measure then vars[#vars + 1] = "BENCH_LIMIT=" .. math.ceil(REQUESTS / THREADS) end
  for i, v in ipairs(vars) do vars[i] = q(v) end
  local cmd = ULIMIT .. "; exec env " .. table.concat(vars, " ") .. " wrk -t " .. THREADS .. " -c " .. connections ..
    " -d " .. math.max(1, math.ceil(opts.duration)) .. "s --timeout 10s -s " .. q(HERE .. "/wrk.lua") ..
    " http://127.0.0.1:" .. port
  local out, code = sh("sh -c " .. q(cmd))
  local line = out:match("bench: ([^\n]+)")
  if code ~= 0 or not line then error("wrk failed:\n" .. out:sub(-2000), 0) end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%d+)") do r[k] = tonumber(v) end
  r.rps = r.requests / (r.duration_us / 1e6)
  r.socket_errors = r.connect + r.read + r.write + r.timeout
  r.errors = r.socket_errors + r.status + r.unexpected
  return r
end

-- ------------------------------------------------------------ one row

local function run_row(row)
  local proc, port, file
  local ok, err = pcall(function()
    if row.server == "nginx" then
      proc, port = start_ceiling()
    elseif row.server == "ours" or row.server == "openresty" then
      if row.mode == "callback" then
        ours_states = ours_states or fixtures("states", PAIRS, tmp .. "/ours-states.txt")
        file = ours_states
      elseif row.mode == "webhook" then
        file = fixtures("webhooks", PAIRS, tmp .. "/" .. row.id .. ".events") -- signed now: valid for 300 s
      end
      if row.hosts then proc, port = start_hosts(row) else proc, port = start_ours(row) end
    else
      if row.mode == "callback" then
        file = tmp .. "/" .. row.id .. ".states"
      elseif row.mode == "webhook" then
        file = fixtures("webhooks", PAIRS, tmp .. "/" .. row.id .. ".events")
      end
      proc, port = start_peer(row, file)
    end
    local connections = row.slow and SLOW_CONNECTIONS or CONNECTIONS
    log("%-22s %s on port %s, %d connections, %s", row.id, row.server, port, connections,
      REQUESTS and ("about " .. REQUESTS .. " requests") or ((WARMUP > 0 and (WARMUP .. " s warm-up + ") or "") .. DURATION .. " s"))
    local skip = 0
    if WARMUP > 0 then skip = run_wrk(row, port, file, { duration = WARMUP, measure = false }).taken_max end
    row.result = run_wrk(row, port, file, { duration = DURATION, skip = skip, measure = true })
    local procs = proc.pid and { proc } or proc
    row.result.rss_kib = 0
    for _, p in ipairs(procs) do
      row.result.rss_kib = row.result.rss_kib + peak_rss(p.pid)
      if not alive(p.pid) then error(p.name .. " exited during the run:\n" .. log_tail(p), 0) end
    end
  end)
  for _, p in ipairs(proc and (proc.pid and { proc } or proc) or {}) do stop(p) end
  if not ok then
    row.failed = tostring(err)
    log("%s failed: %s", row.id, row.failed)
  end
  if file and file ~= ours_states then os.remove(file) end
end

-- ------------------------------------------------------------ the table

local function fmt_int(n)
  local s = string.format("%d", math.floor(n + 0.5))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local function fmt_ms(us) return string.format("%.2f", us / 1000) end

local function fmt_ratio(a, b)
  if not a or not b or b == 0 then return "—" end
  return string.format("%.2f×", a / b)
end

local function find(id)
  for _, r in ipairs(ROWS) do if r.id == id then return r end end
end

local function rps(id)
  local r = find(id)
  return r and r.result and r.result.rps
end

local function rss(id)
  local r = find(id)
  return r and r.result and r.result.rss_kib
end

local PEER_OF = { connect = "peer-connect", callback = "peer-callback", webhooks = "peer-webhooks", slow = "peer-slow" }

local function server_label(row)
  if row.server == "nginx" then return "nginx static `return 302` (ceiling)" end
  if row.server == "peer" then return "peer: Express 5 + stripe-node + better-sqlite3" end
  if row.hosts then
    return string.format("ours, %d hosts behind nginx (round robin), `DATABASE=postgres://…`", row.hosts)
  end
  if row.server == "openresty" then return "ours in nginx (`scripts/openresty/serve --workers 2`), `DATABASE=sqlite:`" end
  return "ours, `DATABASE=" .. (row.db == "memory" and "memory:" or "sqlite:") .. "`"
end

local function errors_cell(r)
  if r.errors == 0 then return "0" end
  local parts = {}
  for _, k in ipairs({ "connect", "read", "write", "timeout", "status", "unexpected" }) do
    if r[k] > 0 then parts[#parts + 1] = (k == "status" and "non-2xx/3xx" or k) .. " " .. fmt_int(r[k]) end
  end
  return fmt_int(r.errors) .. " (" .. table.concat(parts, ", ") .. ")"
end

local function first_line(cmd)
  return (sh(cmd):match("^%s*([^\n]*)") or "?")
end

local function package_version(name)
  local text = read(NODE_DIR .. "/node_modules/" .. name .. "/package.json") or ""
  return text:match('"version"%s*:%s*"([^"]+)"') or "?"
end

-- The report's heading: the machine, the load and the servers measured.
local function heading_lines(started, ncpu)
  local cpu = (read("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "unknown CPU"
  return {
    "## `make bench`",
    "",
    string.format("Machine: %s CPUs (`nproc`), %s; %s; %s.", ncpu, cpu, first_line("uname -sr"), started),
    string.format("Load: wrk %s, `-t %d -c %d`, %s per row%s%s; wrk and the nginx stand-in for Stripe share these " ..
      "%s cores with the server measured, so every figure includes the load generator's cost.",
      first_line("wrk -v 2>&1 | sed -n 's/^wrk \\([^ ]*\\).*/\\1/p'"), THREADS, CONNECTIONS,
      REQUESTS and ("about " .. REQUESTS .. " requests") or (DURATION .. " s"),
      WARMUP > 0 and string.format(" after a %s s warm-up on the same server", WARMUP) or "",
      CHECK and ", statuses checked" or "", ncpu),
    string.format("Servers: ours is `%s serve scripts/platform.lua --quiet` (default workers) at commit %s; " ..
      "the peer is one Node %s process (express %s, stripe %s, better-sqlite3 %s); the ceiling is nginx %s " ..
      "(`worker_processes auto`). A fresh server (and database) per row.",
      BIN, first_line("git describe --always --dirty 2>/dev/null"), first_line("node -v"), package_version("express"),
      package_version("stripe"), package_version("better-sqlite3"),
      first_line("nginx -v 2>&1 | sed 's|.*/||'")),
    "",
    "| route | server | req/s | p50 ms | p99 ms | errors | peak RSS MiB | ours ÷ peer | ours ÷ ceiling | RSS ÷ peer |",
    "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
  }
end

-- The cells after the route and the server of a row that ran; a note about
-- the states or events it reused goes to notes.
local function result_cells(row, notes)
  local r = row.result
  local to_peer, to_ceiling, rss_peer = "", "", ""
  if row.server == "ours" or row.server == "openresty" then
    local peer = PEER_OF[row.group]
    to_peer = fmt_ratio(r.rps, rps(peer))
    if row.slow then
      to_ceiling = fmt_ratio(r.rps, SLOW_CONNECTIONS / SLOW_SECONDS) .. " of the bound"
    else
      to_ceiling = fmt_ratio(r.rps, rps("ceiling"))
    end
    rss_peer = fmt_ratio(r.rss_kib, rss(peer))
  end
  if r.reused > 0 then
    notes[#notes + 1] = string.format("- %s: %s requests reused a state or event (more than BENCH_PAIRS=%d were " ..
      "sent): those answered as replays or duplicates.", row.id, fmt_int(r.reused), PAIRS)
  end
  return { fmt_int(r.rps), fmt_ms(r.p50_us), fmt_ms(r.p99_us), errors_cell(r),
           string.format("%.1f", r.rss_kib / 1024), to_peer, to_ceiling, rss_peer }
end

-- A row's line of the table.
local function row_line(row, notes)
  local route = GROUP_LABEL[row.group]
  if row.group == "slow" then route = string.format(route, SLOW_CONNECTIONS) end
  local cells
  if row.result then
    cells = result_cells(row, notes)
  else
    cells = { "failed: " .. (row.failed or "not run"):match("^[^\n]*"):gsub("|", "/"), "", "", "", "", "", "", "" }
  end
  return "| " .. route .. " | " .. server_label(row) .. " | " .. table.concat(cells, " | ") .. " |"
end

-- The lines under the table: what the columns count, then the notes.
local function footer_lines(lines, ncpu, notes)
  lines[#lines + 1] = ""
  lines[#lines + 1] = string.format("Errors: socket errors (connect, read, write, timeout over 10 s) and non-2xx/3xx " ..
    "answers%s. Slow rows: the bound is %d connections ÷ %.1f s = %s req/s. Peak RSS: VmHWM summed over the " ..
    "server's processes, read at the end of its row.", CHECK and ", plus answers other than the route's 302/303/200" or "",
    SLOW_CONNECTIONS, SLOW_SECONDS, fmt_int(SLOW_CONNECTIONS / SLOW_SECONDS))
  if REQUESTS then
    lines[#lines + 1] = "Request-count mode (BENCH_REQUESTS): each wrk run waits out its BENCH_DURATION after the " ..
      "last answer, so req/s here is not a measurement."
  end
  local multi = rps("ours-callback-postgres-2hosts")
  if multi and rps("ours-callback-sqlite") then
    lines[#lines + 1] = string.format("Several hosts: 2 hosts on one PostgreSQL %s behind nginx ÷ one host on SQLite, " ..
      "callbacks: %s (PostgreSQL " .. (os.getenv("BENCH_PG_FSYNC") == "off" and "with fsync=off" or
      "with its default durability, fsync and synchronous_commit on") .. "; every process " ..
      "shares the same %s cores; peak RSS of that row sums both hosts and the load balancer, not PostgreSQL).", first_line((os.getenv("PG_BIN") or "/usr/lib/postgresql/15/bin") ..
      "/postgres --version | sed -n 's/^postgres (PostgreSQL) \\([0-9.]*\\).*/\\1/p'"), fmt_ratio(multi, rps("ours-callback-sqlite")), ncpu)
  end
  for _, n in ipairs(notes) do lines[#lines + 1] = n end
end

local function table_text(started)
  local ncpu = first_line("nproc")
  local lines, notes = heading_lines(started, ncpu), {}
  for _, row in ipairs(ROWS) do
    if wanted(row) then lines[#lines + 1] = row_line(row, notes) end
  end
  footer_lines(lines, ncpu, notes)
  return table.concat(lines, "\n") .. "\n"
end

-- ------------------------------------------------------------ main

local started = os.date("!%Y-%m-%d %H:%M UTC")
local ok, err = pcall(function()
  local need_peer = false
  for _, row in ipairs(ROWS) do if wanted(row) and row.server == "peer" then need_peer = true end end
  if need_peer then install_peer() end
  local fast, slow = free_port(), free_port()
  standin_fast, standin_slow = fast, slow
  local sleep_ms = math.floor(SLOW_SECONDS * 1000)
  local token = TOKEN_JSON:gsub("\\", "\\\\"):gsub("'", "\\'")
  start_nginx("stand-in", 1, table.concat({
    "  server {",
    "    listen 127.0.0.1:" .. fast .. ";",
    "    default_type application/json;",
    "    location = /oauth/token { return 200 '" .. token .. "'; }",
    "    location / { return 404 '{\"error\":\"not_found\"}'; }",
    "  }",
    "  server {",
    "    listen 127.0.0.1:" .. slow .. ";",
    "    default_type application/json;",
    "    location = /oauth/token { echo_sleep " .. string.format("%.3f", sleep_ms / 1000) .. "; echo '" .. token .. "'; }",
    "    location / { return 404 '{\"error\":\"not_found\"}'; }",
    "  }",
  }, "\n"), { fast, slow }, "load_module " .. ECHO_MODULE .. ";")
  for _, row in ipairs(ROWS) do
    if wanted(row) then run_row(row) end
  end
end)
stop_all()
if pg then pg:stop() end
if not KEEP then os.execute("rm -rf " .. q(tmp)) else log("kept %s", tmp) end
if not ok then
  io.stderr:write("bench: ", tostring(err), "\n")
  os.exit(1)
end

local text = table_text(started)
io.write(text)
io.stdout:flush()
local dir = OUT:match("^(.*)/[^/]*$")
if dir then os.execute("mkdir -p " .. q(dir)) end
write(OUT, text)
log("wrote %s", OUT)
for _, row in ipairs(ROWS) do
  if wanted(row) and not row.result then os.exit(1) end
end
