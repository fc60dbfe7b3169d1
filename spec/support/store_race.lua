-- spec/support/store_race.lua — several host processes race for the same
-- keys of one store at once; the spec checks each key was won once.
--
--   local race = require "support.store_race"
--   local wins = race.run{ url = "sqlite:/tmp/x.db", claim = "s:claim_flow('nonce' .. i, os.time() + 60)",
--                          won = "true", keys = 40, procs = 6 }
--   wins[i]   -- how many processes won key i (claim's first result == won)
--
-- claim is a Lua expression of the open store `s` and the key's number `i`
-- answering r, err (r nil: the store failed, and the process reports it).
local files = require "support.files"
local server = require "support.server"
local lu = require "luaunit"

local M = {}

local SCRIPT = [[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local s = assert(require("stripe_connect.store").open(%q))
local won = {}
for i = 1, %d do
  local r, err = %s
  assert(r ~= nil, err)
  if r == %s then won[#won + 1] = i end
end
s:close()
io.write(table.concat(won, ","), "\n")
]]

function M.run(o)
  local dir = files.tmpdir()
  files.write(dir .. "/claim.lua", SCRIPT:format(o.url, o.keys, o.claim, o.won))
  local bin = os.getenv("STRIPE_CONNECT_BIN") or "build/stripe-connect"
  for i = 1, o.procs do
    os.execute(string.format("(env -u LD_PRELOAD %s run %s/claim.lua > %s/out%d.tmp 2>&1; mv %s/out%d.tmp %s/out%d) &",
      bin, dir, dir, i, dir, i, dir, i))
  end
  local wins = {}
  for i = 1, o.procs do
    local out = server.poll(function() return files.read(dir .. "/out" .. i) end, 30)
    lu.assertNotNil(out, "process " .. i .. " finished")
    lu.assertNotNil(out and out:match("^[%d,]*\n$"), "process " .. i .. ": " .. tostring(out))
    for n in (out or ""):gmatch("%d+") do wins[tonumber(n)] = (wins[tonumber(n)] or 0) + 1 end
  end
  files.rmdir(dir)
  return wins
end

return M
