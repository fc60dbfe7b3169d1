-- spec/support/server.lua — start `stripe-connect serve` in the background
-- for integration specs.
--
--   local server = require "support.server"
--   local s = server.start{ app = "scripts/x.lua", env = { K = "v" }, args = { "--workers", "1" } }
--   s.url, s.port, s.pid, s.log     -- log: path of the server's stderr
--   s:stop()   -- SIGTERM, wait for exit; returns the exit code
--   s:kill()   -- SIGKILL, wait; returns the exit code (137)
--   s:log_text()  -- what the server wrote to stderr so far
--   server.bin    -- the host binary ($STRIPE_CONNECT_BIN or build/stripe-connect)
--   server.keep_log(name, text, env)  -- keep another process's output for the scan
--
-- Kept logs: when STRIPE_CONNECT_TEST_LOGS names a folder (`make test` sets
-- build/test-logs), each server's stderr (NAME.log) and stdout (NAME.out)
-- are written there and kept, with NAME.secrets (the secret values of the
-- environment it was given: every variable named …SECRET…, …TOKEN… or
-- …KEY…, and the files of …_FILE ones) and FAKE_ISSUED_LOG=NAME.issued (the
-- codes and tokens a fake Connect issued).  The last spec of `make test`
-- (spec/final/secret_scan_spec.lua) greps the logs for those values.
--
-- The server listens on 127.0.0.1 with an ephemeral port (`--listen
-- 127.0.0.1:0`) and start() polls its log for the ready line with a
-- deadline.  A watchdog kills it if the spec process exits without stopping
-- it.  Runs from the repository root (where `make test` runs the specs);
-- the binary is $STRIPE_CONNECT_BIN or build/stripe-connect.
local core = require "stripe_connect.core"
local files = require "support.files"

local M = {}

local BIN = os.getenv("STRIPE_CONNECT_BIN") or "build/stripe-connect"
M.bin = BIN       -- the host binary the specs run

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The pid of this Lua process (the parent of a popen'd shell).
local owner_pid
local function my_pid()
  if not owner_pid then
    local p = io.popen("echo $PPID")
    owner_pid = p:read("l")
    p:close()
  end
  return owner_pid
end

-- Poll fn() every `step` seconds until it returns a truthy value or
-- `timeout` seconds pass on the monotonic clock (however long fn itself
-- takes); returns that value or nil.
function M.poll(fn, timeout, step)
  local deadline = core.monotonic() + (timeout or 10)
  step = step or 0.02
  while true do
    local v = fn()
    if v then return v end
    if core.monotonic() >= deadline then return nil end
    core.sleep(step)
  end
end

-- free_port() -> a loopback port nothing listens on now (support.ports).
M.free_port = require("support.ports").free_port

-- run_listener(script, ...) -> pid, port.  Starts `stripe-connect run SCRIPT
-- PORTFILE ...` in the background (a raw-socket test peer that writes its
-- port to PORTFILE once listening, see support.listen) and waits for the port.
function M.run_listener(script, ...)
  local portfile = os.tmpname()
  os.remove(portfile)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = quote(a) end
  local p = io.popen(M.bin .. " run " .. quote(script) .. " " .. quote(portfile) .. " "
                     .. table.concat(args, " ") .. " >/dev/null 2>&1 & echo $!")
  local pid = p:read("l")
  p:close()
  local port = M.poll(function()
    local text = files.read(portfile)
    return text and tonumber(text:match("%d+"))
  end, 10)
  os.remove(portfile)
  assert(port, script .. " did not start listening")
  return pid, port
end

-- ------------------------------------------------------------ kept logs
local LOG_DIR = os.getenv("STRIPE_CONNECT_TEST_LOGS")
if LOG_DIR == "" then LOG_DIR = nil end
M.log_dir = LOG_DIR

local kept = 0

-- log_base(name) -> a path prefix for one process's files: under LOG_DIR
-- (unique per spec process and call) when set, else a temp name.
local function log_base(name)
  if not LOG_DIR then
    local base = os.tmpname()
    os.remove(base)
    return base
  end
  kept = kept + 1
  return ("%s/%s-%03d-%s"):format(LOG_DIR, my_pid(), kept, (name:gsub("^.*/", ""):gsub("%.lua$", ""):gsub("[^%w]+", "_")))
end

-- secret_values(env) -> the values of env's secret-looking variables: each
-- comma-separated item, and the part after `kid:` of keyring items
-- (STATE_SECRETS, TOKEN_KEYS); …_FILE variables give their file's contents.
function M.secret_values(env)
  local out = {}
  for name, value in pairs(env or {}) do
    name = tostring(name)
    if (name:find("SECRET") or name:find("TOKEN") or name:find("KEY")) and type(value) == "string" then
      if name:match("_FILE$") then value = files.read(value) or "" end
      for item in value:gmatch("[^,\n]+") do
        item = item:match("^%s*(.-)%s*$")
        if item ~= "" then
          out[#out + 1] = item
          local after = item:match("^[%w_.-]+:(.+)$")
          if after then out[#out + 1] = after end
        end
      end
    end
  end
  return out
end

local function write_secrets(base, env)
  local values = M.secret_values(env)
  if #values > 0 then files.write(base .. ".secrets", table.concat(values, "\n") .. "\n") end
end

-- keep_log(name, text, env): keeps `text` (output of a process a spec ran
-- itself) as NAME.log under LOG_DIR, with the secrets of env; no-op when
-- LOG_DIR is unset.
function M.keep_log(name, text, env)
  if not LOG_DIR then return end
  local base = log_base(name)
  files.write(base .. ".log", text or "")
  write_secrets(base, env)
end

local Server = {}
Server.__index = Server

local function start_options(opts)
  assert(type(opts) == "table", "server.start: options table expected")
  for k in pairs(opts) do
    assert(k == "app" or k == "env" or k == "args" or k == "ready_timeout" or k == "launcher",
           "server.start: unknown option " .. tostring(k))
  end
  assert(type(opts.app) == "string", "server.start: app (path of APP.lua) is required")
end

-- start{ app = PATH, env = { NAME = value }, args = { ... }, ready_timeout = 10, launcher = PATH? }
function M.start(opts)
  start_options(opts)
  local base = log_base(opts.app)
  local self = setmetatable({ log = base .. ".log", pidfile = base .. ".pid",
                              rcfile = base .. ".rc", app = opts.app }, Server)
  local given = {}
  for k, v in pairs(opts.env or {}) do given[k] = v end
  local stdout = "/dev/null"
  if LOG_DIR then
    stdout = base .. ".out"
    given.FAKE_ISSUED_LOG = given.FAKE_ISSUED_LOG or (base .. ".issued")
    write_secrets(base, given)
  end
  local env = {}
  for k, v in pairs(given) do env[#env + 1] = quote(k .. "=" .. tostring(v)) end
  local args = {}
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = quote(a) end
  -- launcher: a command that takes serve's options in place of `BIN serve APP`
  -- (scripts/openresty/serve: the platform inside nginx)
  local serve = opts.launcher and quote(opts.launcher) or (quote(BIN) .. " serve " .. quote(opts.app))
  local cmd = table.concat({ "exec", "env", table.concat(env, " "), serve, "--listen", "127.0.0.1:0", table.concat(args, " ") }, " ")
  local script = table.concat({
    "(" .. cmd .. " </dev/null >" .. quote(stdout) .. " 2>" .. quote(self.log) .. ") &",
    "spid=$!",
    "echo $spid > " .. quote(self.pidfile),
    "(while kill -0 " .. my_pid() .. " 2>/dev/null && kill -0 $spid 2>/dev/null; do sleep 1; done;",
    " kill -0 " .. my_pid() .. " 2>/dev/null || kill -KILL $spid 2>/dev/null) >/dev/null 2>&1 &",
    "wait $spid; echo $? > " .. quote(self.rcfile) .. ".tmp; mv " .. quote(self.rcfile) .. ".tmp "
      .. quote(self.rcfile),
  }, "\n")
  os.execute("sh -c " .. quote(script) .. " >/dev/null 2>&1 &")
  self.pid = M.poll(function()
    local s = files.read(self.pidfile)
    return s and tonumber(s:match("%d+"))
  end, 5)
  assert(self.pid, "server.start: the server process did not start")
  local port = M.poll(function()
    local log = files.read(self.log) or ""
    local p = log:match("listening on http://127%.0%.0%.1:(%d+)")
    if p then return tonumber(p) end
    if files.read(self.rcfile) then return false end
  end, opts.ready_timeout or 10)
  if not port then
    local rc = self:kill()
    error(("server.start: %s did not get ready (exit %s):\n%s"):format(
      opts.app, tostring(rc), self:log_text()), 2)
  end
  self.port = port
  self.url = "http://127.0.0.1:" .. port
  return self
end

function Server:log_text()
  return files.read(self.log) or ""
end

-- Exit code once the server has exited, else nil.
function Server:exit_code()
  local s = files.read(self.rcfile)
  return s and tonumber(s:match("%d+"))
end

local function wait_exit(self, timeout)
  local rc = M.poll(function() return self:exit_code() end, timeout)
  if rc then
    os.remove(self.pidfile)
    os.remove(self.rcfile)
  end
  return rc
end

-- SIGTERM and wait (up to `timeout` seconds, default 20) for the exit code.
function Server:stop(timeout)
  if self:exit_code() then return wait_exit(self, 0) end
  os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  local rc = wait_exit(self, timeout or 20)
  if rc == nil then return self:kill() end
  return rc
end

-- Send a signal (default TERM) without waiting.
function Server:signal(name)
  os.execute("kill -" .. (name or "TERM") .. " " .. self.pid .. " 2>/dev/null")
end

function Server:kill()
  if not self:exit_code() then
    os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  end
  return wait_exit(self, 10)
end

return M
