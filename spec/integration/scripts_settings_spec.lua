-- The ad hoc scripts (scripts/accounts.lua, refresh.lua, deauthorize.lua):
-- each takes --help; refresh and deauthorize need only the settings they use
-- (not PUBLIC_URL nor STATE_SECRETS, which only the browser flow needs); and
-- one start-up problem gives one message (STATE_SECRETS_FILE=/nonexistent).
local lu = require "luaunit"
local files = require "support.files"

local BIN = os.getenv("STRIPE_CONNECT_BIN") or "build/stripe-connect"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- sh(env, args) -> exit code, stdout, stderr; only PATH and `env` in the environment.
local function sh(env, args)
  local errfile = os.tmpname()
  local parts = { "env -i PATH=" .. q(os.getenv("PATH")) }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
  local p = assert(io.popen(table.concat(parts, " ") .. " " .. BIN .. " " .. args .. " 2>" .. q(errfile)))
  local out = p:read("a")
  local _, _, code = p:close()
  local err = files.read(errfile) or ""
  os.remove(errfile)
  return code, out, err
end

local TestScriptsSettings = {}

function TestScriptsSettings.test_each_script_takes_help()
  for _, name in ipairs({ "accounts", "refresh", "deauthorize" }) do
    local code, out, err = sh({}, "run scripts/" .. name .. ".lua --help")
    lu.assertEquals(code, 0, name .. ": " .. err)
    lu.assertStrMatches(out, "^usage: stripe%-connect run scripts/" .. name .. "%.lua.*", nil, nil, name)
    lu.assertEquals(err, "", name)
  end
  local _, out = sh({}, "run scripts/refresh.lua --help")
  lu.assertStrContains(out, "STRIPE_SECRET_KEY")
  lu.assertNotStrContains(out, "PUBLIC_URL")
end

function TestScriptsSettings.test_refresh_and_deauthorize_need_only_their_settings()
  local dir = files.tmpdir()
  local db = "sqlite:" .. dir .. "/connect.db"
  local ok, err = pcall(function()
    -- refresh: the secret key and the store; no PUBLIC_URL, STATE_SECRETS, client id
    local code, _, e = sh({ STRIPE_SECRET_KEY = "sk_test_scripts", DATABASE = db }, "run scripts/refresh.lua acct_1")
    lu.assertEquals(code, 1, e)
    lu.assertStrContains(e, "refresh: acct_1: no account acct_1 in the store (not_found)")
    lu.assertNotStrContains(e, "refusing to start")
    -- deauthorize needs the client id too: that alone is named
    code, _, e = sh({ STRIPE_SECRET_KEY = "sk_test_scripts", DATABASE = db }, "run scripts/deauthorize.lua acct_1")
    lu.assertEquals(code, 2, e)
    lu.assertStrContains(e, "STRIPE_CLIENT_ID is not set")
    lu.assertNotStrContains(e, "PUBLIC_URL")
    lu.assertNotStrContains(e, "STATE_SECRETS")
    code, _, e = sh({ STRIPE_SECRET_KEY = "sk_test_scripts", STRIPE_CLIENT_ID = "ca_scripts", DATABASE = db },
      "run scripts/deauthorize.lua acct_1")
    lu.assertEquals(code, 1, e)
    lu.assertStrContains(e, "deauthorize: acct_1: no account acct_1 in the store (not_found)")
    -- a setting it does use is still checked
    code, _, e = sh({ STRIPE_SECRET_KEY = "sk_test_scripts", DATABASE = db, STRIPE_TIMEOUT = "soon" },
      "run scripts/refresh.lua acct_1")
    lu.assertEquals(code, 2, e)
    lu.assertStrContains(e, "STRIPE_TIMEOUT must be")
  end)
  files.rmdir(dir)
  if not ok then error(err, 0) end
end

function TestScriptsSettings.test_an_unreadable_secret_file_is_one_message()
  local env = { STRIPE_SECRET_KEY = "sk_test_scripts", STRIPE_CLIENT_ID = "ca_scripts",
    PUBLIC_URL = "http://127.0.0.1:1", DATABASE = "memory:", STATE_SECRETS_FILE = "/nonexistent" }
  local code, _, e = sh(env, "serve scripts/platform.lua --listen 127.0.0.1:0")
  lu.assertEquals(code, 2, e)
  local n = 0
  for line in e:gmatch("[^\n]+") do
    if line:find("STATE_SECRETS", 1, true) then n = n + 1 end
  end
  lu.assertEquals(n, 1, e)
  lu.assertStrContains(e, 'STATE_SECRETS_FILE: cannot read "/nonexistent"')
end

return { TestScriptsSettings = TestScriptsSettings }
