-- spec/support/postgres.lua — a throwaway PostgreSQL server for specs.
--
--   local postgres = require "support.postgres"
--   local pg = postgres.start()        -- initdb in a temp folder, postgres on a loopback port
--                                      -- (fsync off: a spec's data need not survive a power cut;
--                                      -- start{ durable = true } keeps PostgreSQL's defaults)
--   pg.url                             -- postgres://sc:…@127.0.0.1:PORT/postgres
--   pg:fresh_url()                     -- a new, empty database's URL
--   pg:halt() / pg:resume()            -- stop the server (fast), start it again on the same port
--   pg:stop()                          -- stop it and remove the folder
--
-- Debian's server binaries (/usr/lib/postgresql/15/bin, or $PG_BIN).  The
-- server refuses to run as root: as root it runs as the `postgres` user
-- (runuser), and the folder is theirs.  A watchdog stops the server if the
-- spec process exits without stopping it.
local core = require "stripe_connect.core"
local files = require "support.files"
local server = require "support.server"

local M = {}

M.BIN = os.getenv("PG_BIN") or "/usr/lib/postgresql/15/bin"
M.USER, M.PASSWORD = "sc", "sc-spec-password"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function is_root()
  local p = io.popen("id -u")
  local id = p:read("l")
  p:close()
  return id == "0"
end

local P = {}
P.__index = P

-- sh(cmd): run cmd as the server's user; true when it exits 0.
-- The server's programs run without the sanitizer runtimes a SANITIZE=1 run
-- preloads into the interpreter (LD_PRELOAD is inherited: postgres -V, which
-- initdb runs, hangs under a preloaded libasan).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS "

function P:sh(cmd)
  if self.root then cmd = "runuser -u postgres -- sh -c " .. quote(cmd) end
  cmd = CLEAN_ENV .. cmd
  return os.execute(cmd .. " >>" .. quote(self.dir .. "/spec.log") .. " 2>&1") == true
end

function P:log_text()
  return (files.read(self.dir .. "/spec.log") or "") .. (files.read(self.dir .. "/server.log") or "")
end

function M.start(opts)
  opts = opts or {}
  local self = setmetatable({ dir = files.tmpdir(), root = is_root(), dbs = 0,
    fsync = opts.durable and "on" or "off" }, P)
  os.execute("chmod 755 " .. quote(self.dir))
  if self.root then os.execute("chown postgres " .. quote(self.dir)) end
  self.port = server.free_port()
  files.write(self.dir .. "/pw", M.PASSWORD .. "\n")
  if self.root then os.execute("chown postgres " .. quote(self.dir .. "/pw")) end
  assert(self:sh(quote(M.BIN .. "/initdb") .. " -D " .. quote(self.dir .. "/data") .. " -U " .. M.USER ..
    " --pwfile=" .. quote(self.dir .. "/pw") .. " --auth=scram-sha-256 -E UTF8 --no-sync"),
    "initdb failed:\n" .. self:log_text())
  self.url = ("postgres://%s:%s@127.0.0.1:%d/postgres"):format(M.USER, M.PASSWORD, self.port)
  self:resume()
  -- The watchdog: stop the server once this process is gone.
  local p = io.popen("echo $PPID")
  local me = p:read("l")
  p:close()
  local stop = quote(M.BIN .. "/pg_ctl") .. " -D " .. quote(self.dir .. "/data") .. " stop -m immediate"
  if self.root then stop = "runuser -u postgres -- " .. stop end
  stop = CLEAN_ENV .. stop
  os.execute("sh -c " .. quote("while kill -0 " .. me .. " 2>/dev/null && [ -d " .. quote(self.dir) ..
    " ]; do sleep 1; done; [ -d " .. quote(self.dir) .. " ] && " .. stop) .. " >/dev/null 2>&1 &")
  return self
end

-- resume(): start the server (again) on its port; returns once it answers.
function P:resume()
  assert(self:sh(quote(M.BIN .. "/pg_ctl") .. " -D " .. quote(self.dir .. "/data") .. " -l " ..
    quote(self.dir .. "/server.log") .. " -w -t 30 -o " .. quote("-p " .. self.port ..
    " -k " .. self.dir .. " -c listen_addresses=127.0.0.1 -c fsync=" .. self.fsync .. " -c max_connections=200") ..
    " start"), "postgres did not start:\n" .. self:log_text())
  assert(server.poll(function() return core.pg_connect(self.url) end, 20, 0.1),
    "postgres does not answer:\n" .. self:log_text())
end

-- halt(): stop the server (fast shutdown: connections are closed).
function P:halt()
  assert(self:sh(quote(M.BIN .. "/pg_ctl") .. " -D " .. quote(self.dir .. "/data") .. " -w -m fast stop"),
    "postgres did not stop:\n" .. self:log_text())
end

-- fresh_url() -> the URL of a new empty database.
function P:fresh_url()
  self.dbs = self.dbs + 1
  local name = "spec_" .. self.dbs
  local c = assert(core.pg_connect(self.url))
  assert(c:query("CREATE DATABASE " .. name))
  c:close()
  return (self.url:gsub("/postgres$", "/" .. name))
end

function P:stop()
  self:sh(quote(M.BIN .. "/pg_ctl") .. " -D " .. quote(self.dir .. "/data") .. " -w -m fast stop")
  files.rmdir(self.dir)
end

return M
