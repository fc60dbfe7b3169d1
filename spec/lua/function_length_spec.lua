-- Function length: no C function under host/ is over 50 lines (its body,
-- between the braces at column 0 that the project's style puts a function's
-- in).  The Lua functions of lua/ and scripts/ over 60 lines are printed as
-- information (not failed, until they are split).
local lu = require "luaunit"

local C_MAX, LUA_MAX = 50, 60

-- The paths find prints, sorted.
local function found(cmd)
  local out = {}
  for path in assert(io.popen(cmd .. " | sort")):lines() do out[#out + 1] = path end
  return out
end

local function file_lines(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = line end
  return out
end

-- c_functions(lines) -> { { name, first = line of "{", length = body lines } }:
-- a definition is a "{" alone at column 0 after a line that names it.
local function c_functions(lines)
  local found, open, name = {}, nil, nil
  for i, line in ipairs(lines) do
    if line == "{" and i > 1 then
      open, name = i, lines[i - 1]:match("([%w_]+)%s*%(") or lines[i - 1]
    elseif line == "}" and open then
      found[#found + 1] = { name = name, first = open, length = i - open - 1 }
      open = nil
    end
  end
  return found
end

-- lua_functions(lines) -> the same for Lua: a line holding `function` that
-- does not end it, up to the first `end` at its indentation.
local function lua_functions(lines)
  local found = {}
  for i, line in ipairs(lines) do
    local indent = line:match("^(%s*)")
    if not line:match("^%s*%-%-") and line:find("%f[%w]function[%s%w_.:]*%(")
       and not line:find("%f[%w]end%f[^%w]%s*[%),]*%s*$") then
      for j = i + 1, #lines do
        if lines[j]:match("^" .. indent .. "end%f[^%w]") then
          found[#found + 1] = { name = line:match("function%s*([%w_.:]*)"), first = i, length = j - i - 1 }
          break
        end
      end
    end
  end
  return found
end

-- longer_than(paths, scan, max) -> "path:line name (N lines)" for each
-- function scan(lines) finds in those files with a body over max lines.
local function longer_than(paths, scan, max)
  local over = {}
  for _, path in ipairs(paths) do
    for _, f in ipairs(scan(file_lines(path))) do
      if f.length > max then
        over[#over + 1] = ("%s:%d %s (%d lines)"):format(path, f.first, f.name, f.length)
      end
    end
  end
  return over
end

local TestFunctionLength = {}

function TestFunctionLength.test_the_scanner_finds_a_long_c_function()
  local lines = { "static int f(void)", "{" }
  for i = 1, C_MAX + 1 do lines[#lines + 1] = "    x(" .. i .. ");" end
  lines[#lines + 1] = "}"
  local fs = c_functions(lines)
  lu.assertEquals(#fs, 1)
  lu.assertEquals(fs[1].name, "f")
  lu.assertEquals(fs[1].length, C_MAX + 1)
end

function TestFunctionLength.test_no_c_function_over_50_lines()
  local paths = found("find host -name '*.c'")
  lu.assertTrue(#paths > 10, "no C files found under host/")
  lu.assertEquals(longer_than(paths, c_functions, C_MAX), {})
end

function TestFunctionLength.test_lua_functions_over_60_lines_are_listed()
  local paths = {}
  for _, path in ipairs(found("find lua scripts -maxdepth 3 -name '*.lua'")) do
    if path:match("^lua/") or path:match("^scripts/[^/]+%.lua$") then paths[#paths + 1] = path end
  end
  local over = longer_than(paths, lua_functions, LUA_MAX)
  if #over > 0 then
    io.stderr:write("function_length: Lua functions over ", LUA_MAX, " lines (information):\n  ",
      table.concat(over, "\n  "), "\n")
  end
end

return { TestFunctionLength = TestFunctionLength }
