-- Function length: no C function under host/ is over 50 lines (its body,
-- between the braces at column 0 that the project's style puts a function's
-- in), and no Lua function under lua/ and scripts/ is over 60 (its body:
-- the lines after the one that opens it, up to the first `end` at that
-- line's indentation).  A function over the limit is split into well-named
-- smaller ones.
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

-- The lines inside --[[ … ]] comments (a doc comment naming a function is
-- no function).
local function long_comment_lines(lines)
  local inside, open = {}, false
  for i, line in ipairs(lines) do
    if open then
      inside[i], open = true, not line:find("]]", 1, true)
    elseif line:match("^%s*%-%-%[%[") and not line:find("]]", 1, true) then
      inside[i], open = true, true
    end
  end
  return inside
end

-- lua_functions(lines) -> the same for Lua: a line holding `function` that
-- does not end it (as `function(req) return f(req) end },` in a table
-- does), up to the first `end` at its indentation.
local function lua_functions(lines)
  local found, comment = {}, long_comment_lines(lines)
  for i, line in ipairs(lines) do
    local indent = line:match("^(%s*)")
    if not comment[i] and not line:match("^%s*%-%-") and line:find("%f[%w]function[%s%w_.:]*%(")
       and not line:find("%f[%w]end%f[^%w]%s*[%)},]*%s*$") then
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

-- The scanner found one function in lines, f, with a body of `length` lines.
local function assert_only_f(fs, length)
  lu.assertEquals(#fs, 1)
  lu.assertEquals(fs[1].name, "f")
  lu.assertEquals(fs[1].length, length)
end

-- The files cmd lists (more than `least` of them, else it fails with
-- `none`) have no function longer than max, as scan measures them.
local function assert_none_longer(cmd, least, none, scan, max)
  local paths = found(cmd)
  lu.assertTrue(#paths > least, none)
  lu.assertEquals(longer_than(paths, scan, max), {})
end

local TestFunctionLength = {}

function TestFunctionLength.test_the_scanner_finds_a_long_c_function()
  local lines = { "static int f(void)", "{" }
  for i = 1, C_MAX + 1 do lines[#lines + 1] = "    x(" .. i .. ");" end
  lines[#lines + 1] = "}"
  assert_only_f(c_functions(lines), C_MAX + 1)
end

function TestFunctionLength.test_no_c_function_over_50_lines()
  assert_none_longer("find host -name '*.c'", 10, "no C files found under host/", c_functions, C_MAX)
end

-- A doc comment naming a function and a one-line function in a table are
-- not counted.
function TestFunctionLength.test_the_scanner_finds_a_long_lua_function()
  local lines = { "--[[", "function doc(x)", "]]", "local function f(x)",
                  "  local t = { g = function(y) return y end },", "  if x then" }
  for i = 1, LUA_MAX do lines[#lines + 1] = "    x(" .. i .. ")" end
  lines[#lines + 1] = "  end"
  lines[#lines + 1] = "end"
  assert_only_f(lua_functions(lines), LUA_MAX + 3)
end

function TestFunctionLength.test_no_lua_function_over_60_lines()
  assert_none_longer("find lua scripts -name '*.lua'", 20, "no Lua files found under lua/ and scripts/",
    lua_functions, LUA_MAX)
end

return { TestFunctionLength = TestFunctionLength }
