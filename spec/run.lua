-- spec/run.lua — the spec runner: loads each spec file given, runs all its
-- luaunit test classes, and ends with the line `LABEL: N passed, N failed`
-- (luaunit does not print that itself).  Exit status 0 only when nothing
-- failed and at least one test ran.
--
-- usage: run.lua [--label NAME] [--pattern LUA_PATTERN] FILE...
--
-- A spec file returns a table { TestSomething = class, ... }; the runner
-- installs those classes as globals for luaunit to collect.  A file that
-- fails to load counts as one failed test.
local lu = require "luaunit"

local label, pattern, files = "specs", nil, {}
local args = arg or {}
local i = 1
while i <= #args do
  local a = args[i]
  if a == "--label" then label = args[i + 1]; i = i + 2
  elseif a == "--pattern" then pattern = args[i + 1]; i = i + 2
  else files[#files + 1] = a; i = i + 1 end
end

-- Let specs find spec/support/*.lua.  The project's modules come from the
-- runtime's own path (the host's build tree, LUA_PATH, or the LuaRocks tree),
-- so each run tests the modules it is meant to.
package.path = "spec/?.lua;" .. package.path

local load_failures = 0
for _, file in ipairs(files) do
  local ok, suite = pcall(dofile, file)
  if not ok then
    load_failures = load_failures + 1
    io.stderr:write(string.format("%s: cannot load %s: %s\n", label, file, tostring(suite)))
  elseif type(suite) ~= "table" then
    load_failures = load_failures + 1
    io.stderr:write(string.format("%s: %s did not return a table of test classes\n", label, file))
  else
    for name, class in pairs(suite) do
      assert(type(name) == "string" and name:match("^Test"), file .. ": class names start with Test")
      assert(rawget(_G, name) == nil, file .. ": duplicate test class " .. name)
      _G[name] = class
    end
  end
end

local runner = lu.LuaUnit.new()
runner:setOutputType("text")
local run_args = { "--output", "text" }
if pattern then run_args[#run_args + 1] = "--pattern"; run_args[#run_args + 1] = pattern end
local unpack_ = table.unpack or unpack
runner:runSuite(unpack_(run_args))
local r = runner.result
local failed = r.notSuccessCount + load_failures
-- luaunit already leaves skipped tests out of runCount.
local passed = r.runCount - r.notSuccessCount
local skipped = r.skippedCount > 0 and string.format(", %d skipped", r.skippedCount) or ""
print(string.format("%s: %d passed, %d failed%s", label, passed, failed, skipped))
os.exit((failed == 0 and passed > 0) and 0 or 1)
