-- The rockspec (and `make install`) against the tree: every Lua module under
-- lua/stripe_connect/ is listed under its module name, every host/core/*.c
-- is a source of stripe_connect.core, and nothing listed is missing.  Fails
-- when a module or a C file is added without updating the rockspec.
local lu = require "luaunit"
local files = require "support.files"

local ROCKSPEC = "stripe-connect-scm-1.rockspec"

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

local function read(path)
  return assert(files.read(path), "cannot read " .. path)
end

-- The rockspec's assignments, evaluated in an empty environment.
local function rockspec()
  local env = {}
  local chunk = assert(load(read(ROCKSPEC), "=" .. ROCKSPEC, "t", env))
  chunk()
  return env
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local TestRockspec = {}

function TestRockspec.test_lists_every_lua_module_under_its_name()
  local want = {}
  for _, path in ipairs(lines_of("find lua/stripe_connect -name '*.lua'")) do
    local name = path:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
    want[name] = path
  end
  local got = {}
  for name, v in pairs(rockspec().build.modules) do
    if type(v) == "string" then got[name] = v end
  end
  lu.assertEquals(sorted_keys(got), sorted_keys(want))
  lu.assertEquals(got, want)
end

function TestRockspec.test_core_sources_are_every_host_core_c_file()
  local core = rockspec().build.modules["stripe_connect.core"]
  lu.assertEquals(type(core), "table")
  local sources = {}
  for i, s in ipairs(core.sources) do sources[i] = s end
  table.sort(sources)
  lu.assertEquals(sources, lines_of("ls host/core/*.c"))
end

function TestRockspec.test_core_opens_every_area()
  -- each host/core/<area>.c that exports an area (defines sc_open_<area>)
  -- has it called by core.c; the others are an area's helpers, with a header
  -- of their own that an area includes (db.c: sqlite.c).
  local core_c = read("host/core/core.c")
  local all_c = table.concat((function()
    local t = {}
    for i, p in ipairs(lines_of("ls host/core/*.c")) do t[i] = read(p) end
    return t
  end)(), "\n")
  for _, path in ipairs(lines_of("ls host/core/*.c")) do
    local area = path:match("host/core/(%w+)%.c$")
    if read(path):find("void sc_open_" .. area .. "(lua_State *L)", 1, true) then
      lu.assertStrContains(core_c, "sc_open_" .. area .. "(L);", false, path)
    elseif area ~= "core" then
      lu.assertStrContains(all_c, '#include "' .. area .. '.h"', false, path)
    end
  end
end

-- make install takes the modules with one recursive find, so every folder
-- (store/ included) is installed; spec/integration/install_spec.lua checks
-- the installed tree.
function TestRockspec.test_make_install_copies_every_module_folder()
  local makefile = read("Makefile")
  lu.assertStrContains(makefile, "LUA_FILES    := $(shell find lua/stripe_connect -name '*.lua' | sort)")
  lu.assertStrContains(makefile, "$(LUA_FILES:lua/%=$(I_PREFIX)/share/lua/5.4/%)")
end

return { TestRockspec = TestRockspec }
