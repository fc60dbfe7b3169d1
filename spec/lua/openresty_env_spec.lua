-- nginx drops the environment except the variables its config names with
-- `env`: every setting config.load reads (and its _FILE twin) must be named
-- in scripts/openresty/nginx.conf, or the platform inside nginx would run
-- without it (TOKEN_KEYS unset there would store tokens in plaintext).
local lu = require "luaunit"
local config = require "stripe_connect.config"

local TestOpenrestyEnv = {}

local function declared()
  local f = assert(io.open("scripts/openresty/nginx.conf"))
  local names = {}
  for line in f:lines() do
    local name = line:match("^%s*env%s+([%w_]+)%s*;")
    if name then names[name] = true end
  end
  f:close()
  return names
end

function TestOpenrestyEnv.test_every_setting_config_reads_is_declared()
  local read = {}
  config.load(function(name) read[name] = true return nil end)
  local names, missing = declared(), {}
  lu.assertTrue(next(read) ~= nil, "config.load read no setting")
  for name in pairs(read) do
    if not names[name] then missing[#missing + 1] = name end
  end
  table.sort(missing)
  lu.assertEquals(missing, {}, "settings config.load reads that nginx.conf does not pass through (env NAME;)")
end
return { TestOpenrestyEnv = TestOpenrestyEnv }
