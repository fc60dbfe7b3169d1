-- spec/support/stripe_node.lua — the official Stripe Node library for
-- interop specs.
--
--   local stripe_node = require "support.stripe_node"
--   local ok, why = stripe_node.ensure()   -- node + build/node/node_modules/stripe
--   lu.skipIf(not ok, why)
--   local out, code = stripe_node.sh("node spec/support/x.js …")
--   stripe_node.ensure{ "playwright-core" }   -- other npm packages, same folder
--
-- ensure(packages) installs the missing ones of `packages` (default
-- { "stripe" }) once with `npm install --prefix build/node NAME…` when
-- build/node/node_modules/NAME is missing or not at its pinned major
-- (M.MAJOR; build/ is ignored), and answers false with a message only when
-- node or npm is absent.
local M = {}

M.NODE_DIR = os.getenv("STRIPE_NODE_DIR") or "build/node" -- make test sets it for BUILD=…

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

-- Pinned versions (a major, or major.minor).  stripe 22 is the newest whose
-- `engines` include Debian 12's node 18 (stripe 23 wants node >= 20), and
-- playwright-core 1.61 likewise (1.62 wants node >= 20); a pin keeps the
-- specs from changing under us with each npm release.
M.MAJOR = { stripe = "22", ["playwright-core"] = "1.61" }

local have_node, no_node_why
local installed = {}

-- installed_ok(name) -> true when NODE_DIR holds name (at its pinned version).
local function installed_ok(name)
  local f = io.open(M.NODE_DIR .. "/node_modules/" .. name .. "/package.json", "r")
  if not f then return false end
  local text = f:read("a")
  f:close()
  local pin = M.MAJOR[name]
  local version = text:match('"version"%s*:%s*"([^"]+)"') or ""
  return pin == nil or (version .. "."):sub(1, #pin + 1) == pin .. "."
end

-- ensure(packages) -> true | false, why (node or npm absent).  Raises when
-- npm install fails (a broken install is a failure, not a skip).
function M.ensure(packages)
  packages = packages or { "stripe" }
  if have_node == nil then
    have_node = select(2, M.sh("command -v node && command -v npm")) == 0
    if not have_node then
      no_node_why = "node or npm is not installed: skipping the specs that need " .. table.concat(packages, ", ")
      io.stderr:write("stripe_node: ", no_node_why, "\n")
    end
  end
  if not have_node then return false, no_node_why end
  local missing = {}
  for _, name in ipairs(packages) do
    installed[name] = installed[name] or installed_ok(name)
    if not installed[name] then
      missing[#missing + 1] = M.MAJOR[name] and (name .. "@" .. M.MAJOR[name]) or name
    end
  end
  if #missing > 0 then
    local cmd = "npm install --prefix " .. M.NODE_DIR .. " " .. table.concat(missing, " ")
    local out, code = M.sh(cmd)
    assert(code == 0, cmd .. " failed:\n" .. out)
    for _, name in ipairs(packages) do installed[name] = true end
  end
  return true
end

return M
