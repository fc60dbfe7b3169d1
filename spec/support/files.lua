-- spec/support/files.lua — temp folders and whole-file reads/writes for specs.
local M = {}

-- tmpdir() -> path of a fresh empty folder (remove it with M.rmdir).
function M.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

function M.rmdir(path)
  os.execute("rm -rf '" .. path .. "'")
end

-- read(path) -> contents | nil when it does not exist
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- lines(path) -> the file's lines ({} when it does not exist)
function M.lines(path)
  local lines = {}
  local f = io.open(path, "rb")
  if not f then return lines end
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- capture(cmd) -> exit code, what it wrote (stdout and stderr together).
function M.capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

return M
