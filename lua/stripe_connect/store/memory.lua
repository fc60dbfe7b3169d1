-- stripe_connect.store.memory — the store interface (see store/init.lua) in
-- an in-memory SQLite database: the SQLite store's code and guarantees
-- without a file.  Nothing survives the process.
--
--   memory.new()            a fresh, private store
--   memory.new{ name = n }  the process's in-memory store called n: every
--                           lua_State of the process that opens the same
--                           name shares it (one database thread)
--
-- `store.open("memory:")` under `stripe-connect serve` opens the shared one,
-- so every worker of the process sees the same accounts, one-time flows and
-- webhook ids (twin callbacks landing on two workers still spend the code
-- once); elsewhere (`run`, plain Lua) it is a fresh private store.  Values
-- go in and come out as copies, so callers cannot alias its rows.
local sqlite = require "stripe_connect.store.sqlite"
local util = require "stripe_connect.util"

local M = {}

-- new(opts) -> an empty (or the named, shared) memory store.
function M.new(opts)
  opts = util.check_opts(opts, { name = true }, "memory.new")
  if opts.name ~= nil and (type(opts.name) ~= "string" or opts.name == "") then
    error("memory.new: name must be a non-empty string", 2)
  end
  local s = assert(sqlite.open(":memory:", { name = opts.name }))
  s.kind = "memory"
  return s
end

return M
