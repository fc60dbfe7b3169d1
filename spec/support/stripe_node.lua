-- spec/support/stripe_node.lua — the official Stripe Node library for
-- interop specs.
--
--   local stripe_node = require "support.stripe_node"
--   local ok, why = stripe_node.ensure()   -- node + build/node/node_modules/stripe
--   lu.skipIf(not ok, why)
--   local out, code = stripe_node.sh("node spec/support/x.js …")
--
-- ensure() installs the package once with `npm install --prefix build/node
-- stripe` when build/node/node_modules/stripe is missing (build/ is ignored),
-- and answers false with a message only when node or npm is absent.
local M = {}

M.NODE_DIR = "build/node"

-- sh(cmd) -> combined stdout+stderr, exit code (0 on success).
function M.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- q(s) -> s quoted for the shell.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local ensured, why
function M.ensure()
  if ensured ~= nil then return ensured, why end
  ensured, why = false, "node or npm is not installed: skipping the stripe-node interop specs"
  if select(2, M.sh("command -v node && command -v npm")) ~= 0 then
    io.stderr:write("stripe_node: ", why, "\n")
    return ensured, why
  end
  local f = io.open(M.NODE_DIR .. "/node_modules/stripe/package.json", "r")
  if f then
    f:close()
  else
    local out, code = M.sh("npm install --prefix " .. M.NODE_DIR .. " stripe")
    assert(code == 0, "npm install --prefix " .. M.NODE_DIR .. " stripe failed:\n" .. out)
  end
  ensured = true
  return ensured
end

return M
