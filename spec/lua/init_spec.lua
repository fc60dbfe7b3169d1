-- require "stripe_connect": the core and version at once, submodules on
-- first use, nil (not an error) for any other name.
local lu = require "luaunit"

local TestInit = {}

function TestInit.test_lazy_submodules()
  local sc = require "stripe_connect"
  lu.assertIs(sc.core, require "stripe_connect.core")
  lu.assertEquals(sc.version, sc.core.version)
  for _, name in ipairs{ "oauth", "flow", "policy", "store", "webhook", "app", "fake", "state",
                         "config", "pages", "api", "onboard" } do
    lu.assertIs(sc[name], require("stripe_connect." .. name), name)
    lu.assertIs(rawget(sc, name), sc[name], name)
  end
end

-- `transport` was listed as a submodule without a module behind it, so
-- reading sc.transport raised "module 'stripe_connect.transport' not found".
function TestInit.test_unknown_names_are_nil_not_an_error()
  local sc = require "stripe_connect"
  for _, name in ipairs{ "transport", "util", "nope", 1 } do
    lu.assertNil(sc[name], tostring(name))
  end
end

return { TestInit = TestInit }
