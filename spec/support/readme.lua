-- spec/support/readme.lua — code blocks of README.md, for the specs that run them.
local files = require "support.files"

local M = {}

-- lua_block(first_line_prefix) -> the text of the README's ```lua block whose
-- first line starts with first_line_prefix (a plain string); raises when none.
function M.lua_block(prefix)
  local readme = assert(files.read("README.md"), "README.md (run the specs from the repository)")
  for block in readme:gmatch("```lua\n(.-)\n```") do
    if block:sub(1, #prefix) == prefix then return block end
  end
  error("README.md has no ```lua block starting with '" .. prefix .. "'")
end

-- the worked example of "Policy and storage hooks"
function M.policy_example() return M.lua_block("-- policy.lua") end

return M
