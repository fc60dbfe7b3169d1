-- The host binary's `run`, `version` and `help` (host/main.c), run as a
-- child process: exit codes, `stripe-connect: message` with a traceback on
-- stderr, `arg`, the core preloaded and the project's modules found from the
-- binary's location (build tree and install layout) with no LUA_PATH, from
-- any working directory.  Also: lua5.4 and luajit load the core from their
-- build folders and compute the same HMAC as the host.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local files = require "support.files"

local BIN = os.getenv("STRIPE_CONNECT_BIN") or "build/stripe-connect"
local BUILD = BIN:match("^(.*)/[^/]*$") or "."

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function pwd()
  local p = assert(io.popen("pwd"))
  local dir = p:read("l")
  p:close()
  return dir
end
local ROOT = pwd()
local ABS_BIN = BIN:sub(1, 1) == "/" and BIN or (ROOT .. "/" .. BIN)

-- sh(cmd) -> exit code, stdout, stderr.  No Lua search paths are inherited.
local function sh(cmd)
  local errfile = os.tmpname()
  local p = assert(io.popen("env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT " ..
    "-u LUA_INIT_5_4 sh -c " .. q(cmd) .. " 2>" .. q(errfile), "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  local err = files.read(errfile)
  os.remove(errfile)
  assert(how == "exit", cmd .. ": killed by a signal")
  return code, out, err
end

local dir
local function script(name, text)
  local path = dir .. "/" .. name
  files.write(path, text)
  return path
end

local TestHostRun = {}

function TestHostRun.setUp()
  dir = files.tmpdir()
end

function TestHostRun.tearDown()
  files.rmdir(dir)
end

function TestHostRun.test_failures_exit_1_with_a_message()
  local raise = script("raise.lua", 'local function inner() error("boom") end\ninner()\n')
  local table_err = script("table.lua", "error({ code = 1 })\n")
  local tostring_err = script("tostring.lua",
    'error(setmetatable({}, { __tostring = function() return "custom failure" end }))\n')
  local syntax = script("syntax.lua", "local = 1\n")
  local rows = {
    -- name, command, stderr must contain (plain), traceback expected
    { "missing script", q(ABS_BIN) .. " run missing.lua", "stripe-connect: cannot open missing.lua", false },
    { "raising script", q(ABS_BIN) .. " run " .. q(raise), "stripe-connect: " .. raise .. ":1: boom", true },
    { "error object is a table", q(ABS_BIN) .. " run " .. q(table_err),
      "stripe-connect: (error object is a table value)", true },
    { "error object with __tostring", q(ABS_BIN) .. " run " .. q(tostring_err),
      "stripe-connect: custom failure", false },
    { "syntax error", q(ABS_BIN) .. " run " .. q(syntax), "stripe-connect: " .. syntax .. ":1:", false },
  }
  for _, r in ipairs(rows) do
    local code, out, err = sh(r[2])
    lu.assertEquals(code, 1, r[1] .. ": " .. err)
    lu.assertEquals(out, "", r[1])
    lu.assertStrContains(err, r[3], false, r[1])
    lu.assertEquals(err:sub(1, #"stripe-connect: "), "stripe-connect: ", r[1])
    if r[4] then
      lu.assertStrContains(err, "stack traceback:", false, r[1])
      lu.assertStrContains(err, "in main chunk", false, r[1])
    end
  end
end

-- Named after the bug: `run` printed a failing script's message verbatim,
-- Stripe keys, webhook secrets and codes included.
function TestHostRun.test_failure_message_is_redacted()
  local leak = script("leak.lua", 'error("key sk_test_51Habc123 secret whsec_platform_spec_secret " ..\n' ..
    '  "code ac_0123456789abcdef0123 account acct_1Fg9jUA3kq9o1aTc")\n')
  local code, _, err = sh(q(ABS_BIN) .. " run " .. q(leak))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "stripe-connect: " .. leak .. ":1: key sk_test_")
  lu.assertStrContains(err, "stack traceback:")
  lu.assertStrContains(err, "acct_1Fg9jUA3kq9o1aTc", false, "account ids are not secrets")
  for _, secret in ipairs({ "51Habc123", "platform_spec_secret", "spec_secret", "0123456789abcdef0123" }) do
    lu.assertNil(err:find(secret, 1, true), "leaked: " .. secret)
  end
end

function TestHostRun.test_arg_and_varargs_like_lua_c()
  local s = script("args.lua", [[
local n = select("#", ...)
io.write(arg[-1], "|", arg[0], "|", #arg, "|", n, "|", table.concat(arg, ","), "|",
  table.concat({ ... }, ","), "\n")
]])
  local code, out, err = sh(q(ABS_BIN) .. " run " .. q(s) .. " a 'b c' '' --x")
  lu.assertEquals(code, 0, err)
  lu.assertEquals(out, "run|" .. s .. "|4|4|a,b c,,--x|a,b c,,--x\n")
  code, out = sh(q(ABS_BIN) .. " run " .. q(s))
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "run|" .. s .. "|0|0||\n")
end

-- "-" reads the script from standard input, as lua.c does (it was opened
-- as a file named "-").
function TestHostRun.test_script_from_stdin()
  local code, out, err = sh("printf 'io.write(arg[0], \"|\", ..., \"|\", require(\"stripe_connect.core\").version)' | " ..
    q(ABS_BIN) .. " run - x")
  lu.assertEquals(code, 0, err)
  lu.assertEquals(out, "-|x|" .. require("stripe_connect.core").version)
  code, out, err = sh("printf 'error(\"from stdin\")' | " .. q(ABS_BIN) .. " run -")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "stripe-connect: stdin:1: from stdin")
end

function TestHostRun.test_exit_status_from_os_exit()
  local rows = { { "os.exit(3)", 3 }, { "os.exit(true)", 0 }, { "os.exit(false)", 1 }, { "", 0 } }
  for _, r in ipairs(rows) do
    local code = sh(q(ABS_BIN) .. " run " .. q(script("exit.lua", r[1] .. "\n")))
    lu.assertEquals(code, r[2], r[1])
  end
end

-- From another working directory and with no LUA_PATH: the core is
-- preloaded and the library comes from the build tree next to the binary
-- (or, for a build folder elsewhere, the sources it was built from).
local PROBE = [[
local core = require "stripe_connect.core"
local oauth = require "stripe_connect.oauth"
io.write(package.searchpath("stripe_connect.oauth", package.path), "\n",
  core.hex_encode(core.hmac_sha256("key", "msg")), "\n",
  oauth.authorize_url{ client_id = "ca_1", state = "s" }, "\n")
]]

function TestHostRun.test_modules_found_without_lua_path_from_any_directory()
  local probe = script("probe.lua", PROBE)
  local code, out, err = sh("cd / && " .. q(ABS_BIN) .. " run " .. q(probe))
  lu.assertEquals(code, 0, err)
  local found, mac, url = out:match("^(.-)\n(.-)\n(.-)\n$")
  lu.assertNotNil(found, out)
  -- the build tree: <bindir>/../lua for the default build, else the
  -- repository the binary was built from; either way this repository's file
  lu.assertStrMatches(found, "^/.*/lua/stripe_connect/oauth%.lua$")
  lu.assertEquals(files.read(found), files.read(ROOT .. "/lua/stripe_connect/oauth.lua"))
  lu.assertEquals(mac, core.hex_encode(core.hmac_sha256("key", "msg")))
  lu.assertEquals(url, "https://connect.stripe.com/oauth/authorize?response_type=code&client_id=ca_1" ..
    "&scope=read_write&state=s")
end

-- The install layout of `make install`: PREFIX/bin/stripe-connect and
-- PREFIX/share/stripe-connect/lua/stripe_connect/*.lua.
function TestHostRun.test_modules_found_from_the_install_prefix()
  local prefix = dir .. "/prefix"
  assert(os.execute(("mkdir -p %s/bin %s/share/stripe-connect && cp %s %s/bin/ && cp -r %s/lua %s/share/stripe-connect/")
    :format(q(prefix), q(prefix), q(ABS_BIN), q(prefix), q(ROOT), q(prefix))))
  local probe = script("probe.lua", PROBE)
  local code, out, err = sh("cd / && " .. q(prefix .. "/bin/stripe-connect") .. " run " .. q(probe))
  lu.assertEquals(code, 0, err)
  lu.assertEquals(out:match("^(.-)\n"),
    prefix .. "/bin/../share/stripe-connect/lua/stripe_connect/oauth.lua")
end

function TestHostRun.test_version_help_and_usage_errors()
  local rows = {
    -- name, args, exit code, stdout pattern, stderr pattern
    { "version", "version", 0, "^stripe%-connect %d+%.%d+%.%d+ %(Lua 5%.4%.%d+%)\n$", "^$" },
    { "--version", "--version", 0, "^stripe%-connect %d", "^$" },
    { "help", "help", 0, "^usage: stripe%-connect COMMAND", "^$" },
    { "--help", "--help", 0, "^usage:", "^$" },
    { "no command", "", 2, "^$", "^usage:" },
    { "unknown command", "frobnicate", 2, "^$", "^stripe%-connect: unknown command 'frobnicate'\nusage:" },
    { "run without a script", "run", 2, "^$", "^stripe%-connect: run: missing SCRIPT%.lua\nusage:" },
  }
  for _, r in ipairs(rows) do
    local code, out, err = sh(q(ABS_BIN) .. " " .. r[2])
    lu.assertEquals(code, r[3], r[1])
    lu.assertNotNil(out:match(r[4]), r[1] .. ": stdout " .. out)
    lu.assertNotNil(err:match(r[5]), r[1] .. ": stderr " .. err)
  end
  local _, out = sh(q(ABS_BIN) .. " version")
  lu.assertStrContains(out, core.version)
end

-- Issue 2 "Done when": lua5.4 and luajit each require the core from their
-- build folder and compute the same HMAC (and the same as the host).
function TestHostRun.test_lua54_and_luajit_compute_the_same_hmac()
  local chunk = 'local c = require "stripe_connect.core"; io.write(c.hex_encode(c.hmac_sha256("whsec_x", "t.payload")), " ", c.lua_version)'
  local want = core.hex_encode(core.hmac_sha256("whsec_x", "t.payload"))
  local rows = { { "lua5.4", BUILD .. "/lua", "Lua 5.4", os.getenv("SPEC_SAN_LUA") },
                 { "luajit", BUILD .. "/luajit", "Lua 5.1", os.getenv("SPEC_SAN_LUAJIT") } }
  for _, r in ipairs(rows) do
    -- make test SANITIZE=1: the sanitized core.so needs the sanitizer runtimes preloaded
    local pre = r[4] and r[4] ~= "" and ("env " .. r[4] .. " ") or ""
    local code, out, err = sh("cd " .. q(ROOT) .. " && LUA_CPATH=" .. q(r[2] .. "/?.so") .. " " .. pre .. r[1] ..
      " -e " .. q(chunk))
    lu.assertEquals(code, 0, r[1] .. ": " .. err)
    lu.assertEquals(out, want .. " " .. r[3], r[1])
  end
end

return { TestHostRun = TestHostRun }
