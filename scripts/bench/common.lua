-- scripts/bench/common.lua — the shell, file and nginx helpers `make bench`
-- (run.lua) and `make soak` (soak.lua) share.  Both run from the repository
-- root under the host (`stripe-connect run`), so they load this file with
-- dofile("scripts/bench/common.lua").
local core = require "stripe_connect.core"

local M = {}

-- env_number(who, name, default) -> the positive number in $name, default
-- when unset or empty; anything else prints "WHO: NAME must be …" and exits 2.
function M.env_number(who, name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  local n = tonumber(v)
  if not n or n <= 0 then
    io.stderr:write(who, ": ", name, " must be a positive number\n")
    os.exit(2)
  end
  return n
end

function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- sh(cmd) -> its output (stdout and stderr), its exit code.
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

function M.read(path) -- nil when missing
  local f = io.open(path, "rb")
  local s = f and f:read("a")
  if f then f:close() end
  return s
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  assert(f:close())
end

-- Each process runs with as many descriptors as allowed (wrk -c 1000 and a
-- server with as many upstream connections need more than a soft 1024).
M.ULIMIT = "ulimit -n 65536 2>/dev/null || ulimit -n $(ulimit -Hn) 2>/dev/null"

-- launch(dir, name, cmd, env) -> pid, log path: starts the shell command
-- line cmd in the background with the variables env (NAME = value) and as
-- many file descriptors as allowed, its output in dir/NAME.log; raises "NAME
-- did not start" when no pid appears within 2 s.
function M.launch(dir, name, cmd, env)
  local vars = {}
  for k, v in pairs(env or {}) do vars[#vars + 1] = M.q(k .. "=" .. tostring(v)) end
  table.sort(vars)
  local pidfile, logfile = dir .. "/" .. name .. ".pid", dir .. "/" .. name .. ".log"
  local inner = M.ULIMIT .. "; exec env " .. table.concat(vars, " ") .. " " .. cmd
  os.execute("sh -c " .. M.q("(" .. inner .. ") </dev/null >" .. M.q(logfile) .. " 2>&1 & echo $! >" .. M.q(pidfile)))
  for _ = 1, 100 do
    local pid = (M.read(pidfile) or ""):match("%d+")
    if pid then return pid, logfile end
    core.sleep(0.02)
  end
  error(name .. " did not start", 2)
end

-- wait_port(pid, port, timeout) -> true once something accepts on
-- 127.0.0.1:port, or nil, "exited" when the process pid is gone first, or
-- nil, "timeout" after timeout seconds.
function M.wait_port(pid, port, timeout)
  local socket = require "socket"
  local deadline = socket.gettime() + timeout
  while socket.gettime() < deadline do
    if not M.alive(pid) then return nil, "exited" end
    local c = socket.tcp()
    c:settimeout(0.5)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then return true end
    core.sleep(0.05)
  end
  return nil, "timeout"
end

-- free_port() -> a loopback port nothing listens on now, from below the
-- kernel's ephemeral range (the specs' spec/support/ports.lua).
package.path = "spec/?.lua;" .. package.path
M.free_port = require("support.ports").free_port

-- random_token(bytes) -> letters and digits (base64url with - and _ as x).
function M.random_token(bytes)
  return (core.base64url_encode(core.random_bytes(bytes)):gsub("[-_]", "x"))
end

-- Whether the process runs (a zombie does not).
function M.alive(pid)
  local stat = M.read("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %(.*%) (%a)") ~= "Z"
end

-- nginx_conf(d, workers, servers, modules) -> d: writes d/nginx.conf, an
-- nginx of its own in folder d (pid, logs and temp paths there), with the
-- `servers` text inside http {} and `modules` (load_module lines) on top.
function M.nginx_conf(d, workers, servers, modules)
  os.execute("mkdir -p " .. M.q(d))
  local temp = {}
  for _, kind in ipairs({ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" }) do
    temp[#temp + 1] = string.format("  %s_temp_path %s/%s;", kind, d, kind)
  end
  M.write(d .. "/nginx.conf", table.concat({
    modules or "",
    "daemon off;",
    "worker_processes " .. workers .. ";",
    "worker_rlimit_nofile 65536;",
    "pid " .. d .. "/nginx.pid;",
    "error_log " .. d .. "/error.log warn;",
    "events { worker_connections 8192; }",
    "http {",
    "  access_log off;",
    "  keepalive_requests 1000000;",
    "  client_body_buffer_size 64k;",
    table.concat(temp, "\n"),
    servers,
    "}", "",
  }, "\n"))
  return d
end

-- The command that runs the nginx of folder d in the foreground.
function M.nginx_command(d)
  return "nginx -p " .. M.q(d) .. " -c " .. M.q(d .. "/nginx.conf") .. " -e " .. M.q(d .. "/error.log")
end

return M
