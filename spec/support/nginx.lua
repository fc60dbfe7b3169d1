-- spec/support/nginx.lua — a real nginx as a round-robin load balancer in
-- front of several hosts, for the multi-host specs.
--
--   local nginx = require "support.nginx"
--   local lb = nginx.start{ port = P, upstreams = { port1, port2 } }
--   lb.url            -- http://127.0.0.1:P
--   lb:stop()
--
-- nginx runs from a temporary prefix (-p, its own config, pid, logs and temp
-- folders; `daemon off`), nothing of the system nginx is used.  The
-- `upstream` block lists the hosts in order with the default round-robin
-- balancing; a failed attempt is not retried on the other host
-- (proxy_next_upstream off), so each request reaches exactly one host.  A
-- watchdog stops nginx if the spec process exits without stopping it.
local socket = require "socket"
local files = require "support.files"
local server = require "support.server"

local M = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local N = {}
N.__index = N

function M.start(opts)
  assert(type(opts) == "table" and tonumber(opts.port) and type(opts.upstreams) == "table",
    "nginx.start{ port =, upstreams = { … } } expected")
  local d = files.tmpdir()
  local self = setmetatable({ dir = d, port = opts.port, url = "http://127.0.0.1:" .. opts.port }, N)
  local lines = {
    "daemon off;", "worker_processes 1;", "pid " .. d .. "/nginx.pid;",
    "error_log " .. d .. "/error.log warn;", "events { worker_connections 1024; }", "http {",
    "  access_log off;",
  }
  for _, kind in ipairs({ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" }) do
    lines[#lines + 1] = string.format("  %s_temp_path %s/%s;", kind, d, kind)
  end
  lines[#lines + 1] = "  upstream hosts {"
  for _, p in ipairs(opts.upstreams) do lines[#lines + 1] = "    server 127.0.0.1:" .. p .. ";" end
  lines[#lines + 1] = "    keepalive 16;"
  lines[#lines + 1] = "  }"
  for _, l in ipairs({
    "  server {",
    "    listen 127.0.0.1:" .. opts.port .. ";",
    "    location / {",
    "      proxy_pass http://hosts;",
    "      proxy_http_version 1.1;",
    "      proxy_set_header Connection \"\";",
    "      proxy_set_header Host $http_host;",
    "      proxy_next_upstream off;",
    "    }",
    "  }", "}", "" }) do
    lines[#lines + 1] = l
  end
  files.write(d .. "/nginx.conf", table.concat(lines, "\n"))
  local p = io.popen("echo $PPID")
  local me = p:read("l")
  p:close()
  local cmd = "nginx -p " .. quote(d) .. " -c " .. quote(d .. "/nginx.conf") .. " -e " .. quote(d .. "/error.log")
  local script = "(" .. cmd .. " >" .. quote(d .. "/stderr") .. " 2>&1 & echo $! > " .. quote(d .. "/pid.txt") ..
    "; wait) & while kill -0 " .. me .. " 2>/dev/null && [ -d " .. quote(d) .. " ]; do sleep 1; done; " ..
    "[ -f " .. quote(d .. "/pid.txt") .. " ] && kill $(cat " .. quote(d .. "/pid.txt") .. ")"
  os.execute("sh -c " .. quote(script) .. " >/dev/null 2>&1 &")
  self.pid = server.poll(function()
    local s = files.read(d .. "/pid.txt")
    return s and tonumber(s:match("%d+"))
  end, 5)
  local up = server.poll(function()
    local c = socket.connect("127.0.0.1", opts.port)
    if c then c:close() return true end
  end, 10)
  assert(self.pid and up, "nginx did not start: " .. (files.read(d .. "/stderr") or "") ..
    (files.read(d .. "/error.log") or ""))
  return self
end

function N:stop()
  os.execute("kill -QUIT " .. self.pid .. " 2>/dev/null")
  server.poll(function() return not os.execute("kill -0 " .. self.pid .. " 2>/dev/null") end, 10)
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  files.rmdir(self.dir)
end

return M
