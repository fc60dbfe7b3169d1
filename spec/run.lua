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

-- luaunit 3.4 (Debian 12's) crashes the whole run when a setupClass or
-- teardownClass raises ("attempt to index a nil value (local 'node')"),
-- losing every later result and the summary line.  So the runner catches
-- those errors itself: after a failed setupClass each test of the class
-- fails with that error (or is skipped, when it was lu.skip), without
-- running setUp; a failed teardownClass counts as one failure.
local class_failures = 0
-- Every failure also gets one line `LABEL: FAILED what: first line of why`,
-- printed just before the summary, so the tail of a long log (all CI shows)
-- still names what failed; `make test` gathers them again before its total.
local failure_lines = {}
local function note_failure(what, why)
  local first = tostring(why or ""):match("[^\n]*") or ""
  failure_lines[#failure_lines + 1] = string.format("%s: FAILED %s: %s", label, what, first:sub(1, 300))
end

local function keep_skip_or_trace(e)
  if type(e) == "string" and not e:find(lu.SKIP_PREFIX, 1, true) then
    return debug.traceback(e, 2)
  end
  return e
end

local function guard_class(name, class)
  local setup_error
  local setup, teardown = rawget(class, "setupClass"), rawget(class, "teardownClass")
  if type(setup) == "function" then
    class.setupClass = function(self)
      local ok, err = xpcall(function() setup(self) end, keep_skip_or_trace)
      setup_error = nil
      if not ok then
        setup_error = (type(err) == "string" and not err:find(lu.SKIP_PREFIX, 1, true))
          and (name .. ".setupClass failed: " .. err) or err
      end
    end
  end
  if type(teardown) == "function" then
    class.teardownClass = function(self)
      local ok, err = xpcall(function() teardown(self) end, keep_skip_or_trace)
      if not ok then
        class_failures = class_failures + 1
        note_failure(name .. ".teardownClass", err)
        io.stderr:write(string.format("%s: %s.teardownClass failed: %s\n", label, name, tostring(err)))
      end
    end
  end
  local wrapped = {}
  for key, fn in pairs(class) do
    if type(key) == "string" and type(fn) == "function" then
      local lower = key:lower()
      if lower:sub(1, 4) == "test" then
        wrapped[key] = function(...)
          if setup_error then error(setup_error, 0) end
          return fn(...)
        end
      elseif lower == "setup" then
        wrapped[key] = function(...)
          if setup_error then return end
          return fn(...)
        end
      end
    end
  end
  for key, fn in pairs(wrapped) do class[key] = fn end
end

local load_failures = 0
for _, file in ipairs(files) do
  local ok, suite = pcall(dofile, file)
  if not ok then
    load_failures = load_failures + 1
    note_failure(file, "cannot load: " .. tostring(suite))
    io.stderr:write(string.format("%s: cannot load %s: %s\n", label, file, tostring(suite)))
  elseif type(suite) ~= "table" then
    load_failures = load_failures + 1
    note_failure(file, "did not return a table of test classes")
    io.stderr:write(string.format("%s: %s did not return a table of test classes\n", label, file))
  else
    for name, class in pairs(suite) do
      assert(type(name) == "string" and name:match("^Test"), file .. ": class names start with Test")
      assert(rawget(_G, name) == nil, file .. ": duplicate test class " .. name)
      guard_class(name, class)
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
for _, list in ipairs({ r.failedTests or {}, r.errorTests or {} }) do
  for _, node in ipairs(list) do note_failure(node.testName, node.msg) end
end
for _, line in ipairs(failure_lines) do print(line) end
local failed = r.notSuccessCount + load_failures + class_failures
-- luaunit already leaves skipped tests out of runCount.
local passed = r.runCount - r.notSuccessCount
local skipped = r.skippedCount > 0 and string.format(", %d skipped", r.skippedCount) or ""
print(string.format("%s: %d passed, %d failed%s", label, passed, failed, skipped))
os.exit((failed == 0 and passed > 0) and 0 or 1)
