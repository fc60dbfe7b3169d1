-- Issue 13, finding 12: the files that hold secrets are created 0600 from
-- the start: the SQLite database and its -wal and -shm files (tokens), and
-- `make run`'s supervisor file data/.run.sh (keys, in exports); make run's
-- data folder is 0700.
local lu = require "luaunit"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"
local files = require "support.files"

local function mode(path)
  local p = io.popen("stat -c %a '" .. path .. "' 2>/dev/null")
  local m = p:read("l")
  p:close()
  return m
end

local TestFixFileModes = {}

function TestFixFileModes.test_database_files_are_0600()
  local p = platform.start{}
  local ok, err = pcall(function()
    local res = p:connect(http.browser())              -- a write: the -wal and -shm exist
    lu.assertEquals(res.status, 303)
    for _, suffix in ipairs({ "", "-wal", "-shm" }) do
      lu.assertEquals(mode(p.dir .. "/connect.db" .. suffix), "600", "connect.db" .. suffix)
    end
  end)
  p:stop()
  if not ok then error(err, 0) end
end

function TestFixFileModes.test_a_store_opened_by_a_script_creates_0600()
  local dir = files.tmpdir()
  local db = dir .. "/script.db"
  files.write(dir .. "/open.lua", 'local s = assert(require("stripe_connect.store").open("sqlite:' .. db .. '"))\n'
    .. 'if s.close then s:close() end\n')
  local p = io.popen("umask 022; " .. server.bin .. " run " .. dir .. "/open.lua 2>&1; echo rc=$?")
  local out = p:read("a")
  p:close()
  local m = mode(db)
  files.rmdir(dir)
  lu.assertStrContains(out, "rc=0")
  lu.assertEquals(m, "600")
end

function TestFixFileModes.test_make_run_files_are_0600()
  local dir = files.tmpdir() .. "/data"
  -- the platform cannot start (its port is taken): make run stops right
  -- after writing its files
  local taken = server.start{ app = "spec/support/apps/serve_basic.lua", args = { "--workers", "1" } }
  local p = io.popen(string.format("umask 022; env -u STRIPE_SECRET_KEY -u STRIPE_CLIENT_ID -u DATABASE PORT=%d "
    .. "FAKE_PORT=%d DATA_DIR=%s timeout 60 build/stripe-connect run scripts/dev.lua 2>&1 </dev/null",
    taken.port, server.free_port(), dir))
  p:read("a")
  p:close()
  taken:stop()
  local modes = { dir = mode(dir), run = mode(dir .. "/.run.sh"), secrets = mode(dir .. "/state_secrets"),
                  token = mode(dir .. "/admin_token") }
  files.rmdir(dir:match("^(.*)/data$"))
  lu.assertEquals(modes, { dir = "700", run = "600", secrets = "600", token = "600" })
end

return { TestFixFileModes = TestFixFileModes }
