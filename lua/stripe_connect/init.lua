-- stripe_connect — the public Lua library.  Requires the C core and exposes
-- the friendly modules lazily, so `require "stripe_connect"` stays cheap in
-- every runtime (host, plain lua5.4, LuaJIT/OpenResty).
local core = require "stripe_connect.core"

local M = {
  core = core,
  version = core.version,
}

-- The public submodules (M.oauth, M.flow, …); any other key is nil.
local submodules = {
  oauth = true, flow = true, policy = true, store = true, webhook = true,
  app = true, fake = true, state = true, config = true, pages = true, api = true, onboard = true,
}

setmetatable(M, {
  __index = function(t, k)
    if submodules[k] then
      local mod = require("stripe_connect." .. k)
      rawset(t, k, mod)
      return mod
    end
    return nil
  end,
})

return M
