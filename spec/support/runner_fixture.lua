-- spec/support/runner_fixture.lua — classes whose setupClass / teardownClass
-- raise, for spec/integration/spec_runner_spec.lua (not a spec itself: the
-- name does not end in _spec.lua).  Expected: 2 passed, 3 failed, 1 skipped.
local lu = require "luaunit"
local A, B, C, D = {}, {}, {}, {}
local setups = 0
function A.setupClass() error("cannot start the server") end
function A.setUp() setups = setups + 1; error("setUp must not run") end
function A.test_one() end
function A.test_two() end
function B.setupClass() lu.skip("node is absent") end
function B.test_skipped() end
function C.test_ok() lu.assertEquals(setups, 0) end
function C.teardownClass() error("teardown broke") end
function D.setupClass() D.x = 1 end
function D.test_fine() lu.assertEquals(D.x, 1) end
return { TestA = A, TestB = B, TestC = C, TestD = D }
