-- Every repository path the README and doc/*.md cite in backticks
-- (`spec/…`, `scripts/…`, `lua/…`, `host/…`, `doc/…`) exists, so the
-- documents cannot point at files that were renamed or never added.
-- Globs (`fix_*_spec.lua`) and placeholders (`<target>`) are not paths.
local lu = require "luaunit"
local files = require "support.files"

local ROOTS = { spec = true, scripts = true, lua = true, host = true, doc = true }

-- cited(text) -> the cited paths, in order, each once
local function cited(text)
  local out, seen = {}, {}
  for inner in text:gmatch("`([^`\n]+)`") do
    for word in inner:gmatch("[^%s\"'(),;:=]+") do
      local root = word:match("^(%a+)/")
      if root and ROOTS[root] and not word:find("[*<>{}%[%]…|$]") then
        word = word:gsub("[%.]+$", "")
        if not seen[word] then seen[word] = true; out[#out + 1] = word end
      end
    end
  end
  return out
end

-- missing(paths) -> the ones that do not exist (files or folders)
local function missing(paths)
  local list = os.tmpname()
  files.write(list, table.concat(paths, "\n") .. "\n")
  local p = assert(io.popen("while IFS= read -r f; do [ -e \"$f\" ] || printf '%s\\n' \"$f\"; done < '" .. list .. "'"))
  local out = {}
  for line in p:lines() do if line ~= "" then out[#out + 1] = line end end
  p:close()
  os.remove(list)
  return out
end

local function documents()
  local docs = { "README.md" }
  local p = assert(io.popen("ls doc/*.md 2>/dev/null"))
  for line in p:lines() do docs[#docs + 1] = line end
  p:close()
  return docs
end

local TestDocPaths = {}

function TestDocPaths.test_the_extractor_sees_paths_and_skips_globs()
  local got = cited("see `spec/lua/x_spec.lua` and `scripts/openresty/serve --workers 2`, " ..
    "`spec/integration/fix_*_spec.lua`, `spec/fuzz/corpus/<target>/`, `build/stripe-connect`, " ..
    "`doc/PROTOCOL.md` §5, `lua/stripe_connect/store/`, `sqlite:data/connect.db`, (`host/core/crypto.c`).")
  lu.assertEquals(got, { "spec/lua/x_spec.lua", "scripts/openresty/serve", "doc/PROTOCOL.md",
    "lua/stripe_connect/store/", "host/core/crypto.c" })
  lu.assertEquals(missing({ "README.md", "spec/lua/no_such_spec.lua", "lua/stripe_connect/" }),
    { "spec/lua/no_such_spec.lua" })
end

function TestDocPaths.test_every_cited_path_exists()
  local docs = documents()
  lu.assertTrue(#docs >= 2, "README.md and doc/*.md (run the specs from the repository)")
  local bad = {}
  for _, doc in ipairs(docs) do
    local text = assert(files.read(doc), doc)
    for _, path in ipairs(missing(cited(text))) do bad[#bad + 1] = doc .. ": " .. path end
  end
  lu.assertEquals(bad, {}, "cited paths that do not exist:\n" .. table.concat(bad, "\n"))
end

-- The README's Architecture section names every source file of host/ and
-- lua/ (by its path from the repository's root), so it matches the tree.
function TestDocPaths.test_the_architecture_section_names_every_source_file()
  local readme = assert(files.read("README.md"))
  local section = readme:match("\n## Architecture\n(.-)\n## ")
  lu.assertNotNil(section, "README.md has no Architecture section")
  local unnamed = {}
  local p = assert(io.popen("find host lua -name '*.c' -o -name '*.h' -o -name '*.lua' | sort"))
  for path in p:lines() do
    local short = path:gsub("^host/", ""):gsub("^lua/stripe_connect/", "")
    if not section:find(path, 1, true) and not section:find(short, 1, true) then unnamed[#unnamed + 1] = path end
  end
  p:close()
  lu.assertEquals(unnamed, {}, "files the README's Architecture section does not name")
end

return { TestDocPaths = TestDocPaths }
