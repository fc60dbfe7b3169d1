-- spec/run.lua itself: the summary line and exit status, and the bug it
-- works around — luaunit 3.4 crashed the whole run (losing every later
-- result and the summary line) when a setupClass or teardownClass raised.
local lu = require "luaunit"
local files = require "support.files"

local BIN = os.getenv("STRIPE_CONNECT_BIN") or "build/stripe-connect"

-- runner(args) -> exit code, stdout, stderr of `BIN run spec/run.lua ARGS`
local function runner(args)
  local errfile = os.tmpname()
  local p = assert(io.popen(BIN .. " run spec/run.lua " .. args .. " 2>" .. errfile, "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  local err = files.read(errfile)
  os.remove(errfile)
  return code, out, err
end

local TestSpecRunner = {}

function TestSpecRunner.test_raising_setup_class_and_teardown_class_do_not_crash_the_run()
  local code, out, err = runner("--label fixture spec/support/runner_fixture.lua")
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "\nfixture: 2 passed, 3 failed, 1 skipped\n")
  lu.assertStrContains(out, "TestA.setupClass failed: spec/support/runner_fixture.lua:")
  lu.assertStrContains(out, "cannot start the server")
  lu.assertNil(out:find("setUp must not run", 1, true))
  lu.assertStrContains(err, "fixture: TestC.teardownClass failed:")
  lu.assertNil(out:find("attempt to index a nil value", 1, true))
  -- each failure is named again, one line each, just before the summary
  local tail = out:match("(fixture: FAILED .*)$") or ""
  lu.assertStrContains(tail, "fixture: FAILED TestA.test_one: TestA.setupClass failed:")
  lu.assertStrContains(tail, "fixture: FAILED TestA.test_two: TestA.setupClass failed:")
  lu.assertStrContains(tail, "fixture: FAILED TestC.teardownClass: ")
  lu.assertStrContains(tail, "teardown broke")
  local _, n = tail:gsub("fixture: FAILED ", "")
  lu.assertEquals(n, 3)
  lu.assertStrContains(tail, "\nfixture: 2 passed, 3 failed, 1 skipped\n")
end

function TestSpecRunner.test_load_failures_and_empty_runs_fail()
  local dir = files.tmpdir()
  files.write(dir .. "/broken_spec.lua", "return {")
  files.write(dir .. "/not_a_table_spec.lua", "return 1")
  files.write(dir .. "/empty_spec.lua", "return {}")
  local rows = {
    -- name, files, summary line
    { "syntax error", { "broken_spec.lua" }, "x: 0 passed, 1 failed" },
    { "not a table", { "not_a_table_spec.lua" }, "x: 0 passed, 1 failed" },
    { "no tests at all", { "empty_spec.lua" }, "x: 0 passed, 0 failed" },
  }
  for _, r in ipairs(rows) do
    local paths = {}
    for i, f in ipairs(r[2]) do paths[i] = dir .. "/" .. f end
    local code, out = runner("--label x " .. table.concat(paths, " "))
    lu.assertEquals(code, 1, r[1])
    lu.assertStrContains(out, "\n" .. r[3] .. "\n", false, r[1])
    if r[3]:find("1 failed", 1, true) then
      lu.assertStrContains(out, "x: FAILED " .. paths[1] .. ": ", false, r[1])
    end
  end
  files.rmdir(dir)
end

return { TestSpecRunner = TestSpecRunner }
