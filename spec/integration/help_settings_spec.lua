-- `stripe-connect help [COMMAND|settings]` and `run --help` (host/main.c), and
-- the one table of settings (stripe_connect.settings) checked against what
-- config.load reads, its defaults and secret files, and the README's
-- "Configuration (environment)" table, in both directions, so none can drift.
local lu = require "luaunit"
local files = require "support.files"
local settings = require "stripe_connect.settings"
local config = require "stripe_connect.config"

local BIN = os.getenv("STRIPE_CONNECT_BIN") or "build/stripe-connect"

local function sh(args) return files.capture(BIN .. " " .. args .. " 2>/dev/null") end

local TestHelpSettings = {}

function TestHelpSettings.test_help_topics()
  local rows = {
    { "help", "^usage: stripe%-connect COMMAND" },
    { "help run", "^usage: stripe%-connect run SCRIPT%.lua" },
    { "run --help", "^usage: stripe%-connect run SCRIPT%.lua" },
    { "help serve", "^usage: stripe%-connect serve APP%.lua.*%-%-listen" },
    { "serve --help", "^usage: stripe%-connect serve APP%.lua" },
    { "help version", "^usage: stripe%-connect version" },
    { "help doctor", "^usage: stripe%-connect run scripts/doctor%.lua" },
    { "help settings", "^Environment settings" },
  }
  for _, r in ipairs(rows) do
    local code, out = sh(r[1])
    lu.assertEquals(code, 0, r[1])
    lu.assertNotNil(out:match(r[2]), r[1] .. ": " .. out)
  end
  lu.assertEquals((sh("help frobnicate")), 2)
end

function TestHelpSettings.test_help_settings_lists_every_setting_with_default_and_example()
  local _, out = sh("help settings")
  for _, s in ipairs(settings.PLATFORM) do
    local block = out:match("\n  " .. s.name .. " [^\n]*\n([^\n]*\n[^\n]*\n)")
    lu.assertNotNil(block, s.name)
    lu.assertStrContains(block, "default: " .. (s.default or "unset"))
    lu.assertStrContains(block, "example: " .. s.name .. "=")
    if s.file then lu.assertStrContains(out, s.name .. "_FILE=PATH") end
  end
end

function TestHelpSettings.test_the_table_is_what_config_load_reads()
  local asked = {}
  config.load(function(name) asked[name] = true; return nil end)
  local want = {}
  for name in pairs(settings.by_name()) do want[name] = true end
  lu.assertEquals(asked, want)
  local files_set = {}
  for _, s in ipairs(settings.PLATFORM) do if s.file then files_set[s.name] = true end end
  lu.assertEquals(config.SECRET_FILES, files_set)
  for _, s in ipairs(settings.PLATFORM) do
    if s.default and s.default ~= "required" and not s.default:find("PUBLIC_URL", 1, true) then
      lu.assertEquals(config.DEFAULTS[s.name], s.default, s.name)
    end
  end
  for name in pairs(config.DEFAULTS) do lu.assertNotNil(settings.by_name()[name], name) end
end

function TestHelpSettings.test_make_run_and_the_fake_settings_are_listed()
  local _, out = sh("help settings")
  local fake_asked, want = {}, {}
  require("stripe_connect.fake").config_from_env(function(name) fake_asked[name] = true end)
  for _, st in ipairs(settings.FAKE) do
    want[st.name] = true
    lu.assertStrContains(out, "example: " .. st.name .. "=")
  end
  lu.assertEquals(fake_asked, want)
  -- every name scripts/dev.lua reads is a platform or make run setting
  local known = settings.by_name()
  for _, st in ipairs(settings.DEV) do
    known[st.name] = st
    lu.assertStrContains(out, "example: " .. st.name .. "=")
  end
  local dev = assert(files.read("scripts/dev.lua"))
  local n = 0
  for name in dev:gmatch('getenv%("([%u_]+)"') do
    n = n + 1
    lu.assertNotNil(known[name], name .. " (scripts/dev.lua) is not in stripe_connect.settings")
  end
  lu.assertTrue(n >= 5)
end

function TestHelpSettings.test_the_readme_table_matches_both_ways()
  local readme = assert(files.read("README.md"))
  local section = assert(readme:match("\n### The platform's settings %(environment%)\n(.-)\n\n[^|]"))
  local rows = {}
  for name, default in section:gmatch("\n| `([%u_]+)` | ([^|]*) |") do rows[name] = default end
  local want = {}
  for _, s in ipairs(settings.PLATFORM) do
    want[s.name] = true
    local d = rows[s.name]
    lu.assertNotNil(d, s.name .. " is not in the README's table")
    if s.default == "required" then lu.assertStrContains(d, "required", s.name)
    elseif s.default then lu.assertStrContains(d, "`" .. s.default .. "`", s.name)
    else lu.assertStrContains(d, "unset", s.name) end
  end
  for name in pairs(rows) do lu.assertTrue(want[name], name .. " is in the README but not in help settings") end
  -- every NAME_FILE the platform reads is named in the README
  for _, s in ipairs(settings.PLATFORM) do
    if s.file then lu.assertStrContains(readme, "`" .. s.name .. "`", s.name) end
  end
end

return { TestHelpSettings = TestHelpSettings }
