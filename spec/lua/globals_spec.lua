-- No accidental globals (STYLE.md: "no globals"): every Lua file under lua/
-- and scripts/ is compiled with `luac5.4 -p -l` and its bytecode must never
-- assign a global (SETTABUP _ENV) and read only Lua's standard globals
-- (GETTABUP _ENV).  A typo such as `reslt = …` or a missing `local` fails
-- here even in a branch no other spec runs.  Skipped when luac5.4 is absent.
local lu = require "luaunit"

local LUAC = "luac5.4"

-- Lua 5.4's standard globals, plus `unpack` (read only as `table.unpack or
-- unpack`, for LuaJIT) and `arg` (scripts run by the host or lua5.4).
local STANDARD = {}
for name in ([[
  _G _VERSION arg assert collectgarbage dofile error getmetatable ipairs load loadfile
  next pairs pcall print rawequal rawget rawlen rawset require select setmetatable
  tonumber tostring type unpack warn xpcall
  coroutine debug io math os package string table utf8
]]):gmatch("%S+") do STANDARD[name] = true end

-- Files another Lua host runs, and the globals its API is made of: wrk calls
-- setup/init/request/response/done, sets `wrk` and (through setup's
-- thread:set) `id`, and hands `counts` back to done() with thread:get.
local HOST_API = {
  ["scripts/bench/wrk.lua"] = { setup = true, init = true, request = true, response = true, done = true,
                                wrk = true, id = true, counts = true },
  ["scripts/bench/soak_wrk.lua"] = { setup = true, init = true, request = true, response = true, done = true,
                                     wrk = true, id = true, counts = true, statuses = true },
}

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function have_luac()
  return #lines_of("command -v " .. LUAC .. " 2>/dev/null") > 0
end

-- globals(path) -> { writes = {name…}, reads = {name…}, other = {line…} }
local function globals(path)
  local r = { writes = {}, reads = {}, other = {} }
  for _, line in ipairs(lines_of(LUAC .. " -p -l -l '" .. path .. "' 2>&1")) do
    local instruction = line:match("^%s*%d+%s+%[%d+%]%s+(.*)$")
    if instruction and instruction:find("%f[%w_]_ENV%f[^%w_]") then -- not a constant such as "NODE_ENV"
      local op, name = instruction:match("^(%u+)%s.*; _ENV \"([^\"]+)\"")
      if op == "SETTABUP" then
        r.writes[#r.writes + 1] = name
      elseif op == "GETTABUP" then
        r.reads[#r.reads + 1] = name
      else
        -- _ENV reached another way (GETUPVAL + GETFIELD when the name is
        -- not a short constant): this spec cannot read it, so it says so.
        r.other[#r.other + 1] = instruction
      end
    elseif line:find("^luac") then
      r.other[#r.other + 1] = line   -- a syntax error
    end
  end
  return r
end

local TestGlobals = {}

function TestGlobals.test_no_module_or_script_touches_a_non_standard_global()
  lu.skipIf(not have_luac(), LUAC .. " is not installed (Debian package lua5.4)")
  local files = lines_of("find lua scripts -name '*.lua' | sort")
  lu.assertTrue(#files > 10, "found the project's Lua files")
  local problems = {}
  for _, path in ipairs(files) do
    local g = globals(path)
    local api = HOST_API[path] or {}
    for _, name in ipairs(g.writes) do
      if not api[name] then
        problems[#problems + 1] = path .. ": assigns the global '" .. name .. "'"
      end
    end
    for _, name in ipairs(g.reads) do
      if not STANDARD[name] and not api[name] then
        problems[#problems + 1] = path .. ": reads the undefined global '" .. name .. "'"
      end
    end
    for _, line in ipairs(g.other) do
      problems[#problems + 1] = path .. ": " .. line
    end
  end
  lu.assertEquals(problems, {})
end

-- The checker itself: it sees a write, an unknown read, and a clean file.
function TestGlobals.test_the_check_sees_writes_and_unknown_reads()
  lu.skipIf(not have_luac(), LUAC .. " is not installed (Debian package lua5.4)")
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write("local M = {}\nfunction M.f(x) reslt = x; return resutl end\nreturn M\n")
  f:close()
  local g = globals(path)
  lu.assertEquals(g.writes, { "reslt" })
  lu.assertEquals(g.reads, { "resutl" })
  f = assert(io.open(path, "wb"))
  f:write("local M = {}\nfunction M.f(x) local y = tostring(x); return y end\nreturn M\n")
  f:close()
  g = globals(path)
  lu.assertEquals(g.writes, {})
  lu.assertEquals(g.reads, { "tostring" })
  lu.assertEquals(g.other, {})
  -- past 256 constants a global goes through GETUPVAL _ENV: reported, not missed
  local keys = {}
  for i = 1, 300 do keys[i] = '"k' .. i .. '"' end
  f = assert(io.open(path, "wb"))
  f:write("local t = {" .. table.concat(keys, ",") .. "}\nfoo = t\n")
  f:close()
  g = globals(path)
  os.remove(path)
  lu.assertEquals(#g.other, 1)
  lu.assertStrContains(g.other[1], "GETUPVAL")
end

return { TestGlobals = TestGlobals }
