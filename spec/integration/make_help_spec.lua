-- `make help` lists every target the Makefile declares phony, and each of
-- them has a rule (a target that does nothing, as test-quick was, fails).
local lu = require "luaunit"
local files = require "support.files"

local TestMakeHelp = {}

function TestMakeHelp.test_help_lists_every_target_and_each_has_a_rule()
  local makefile = assert(files.read("Makefile"))
  local phony = assert(makefile:match("\n%.PHONY:([^\n]+)"))
  local p = io.popen("make -s --no-print-directory help 2>&1")
  local help = "\n" .. p:read("a")
  p:close()
  local n = 0
  for target in phony:gmatch("%S+") do
    n = n + 1
    lu.assertStrMatches(help, ".*\nmake " .. target:gsub("%-", "%%-") .. " +%S.*", nil, nil, target)
    -- a rule with a recipe, or with prerequisites (not an export line)
    local has_rule, lines = false, {}
    for line in (makefile .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    for i, line in ipairs(lines) do
      local prereq = line:match("^" .. target:gsub("%-", "%%-") .. ":(.*)$")
      if prereq and (((lines[i + 1] or ""):sub(1, 1) == "\t")
          or (prereq:match("%S") and not prereq:match("^%s*export "))) then
        has_rule = true
      end
    end
    lu.assertTrue(has_rule, target .. " has no rule")
  end
  lu.assertTrue(n >= 10, phony)
end

return { TestMakeHelp = TestMakeHelp }
