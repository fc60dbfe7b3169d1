-- spec/support/secret_scan.lua — the secret scan of a spec run's kept logs
-- (support.server writes them under STRIPE_CONNECT_TEST_LOGS):
--
--   local scan = require "support.secret_scan"
--   local r = scan.run(dir)
--   r.logs, r.bytes      -- *.log and *.out files read, and their size
--   r.secrets, r.issued  -- configured secret values (*.secrets, the fake's
--                        -- defaults) and codes/tokens the fakes issued (*.issued)
--   r.hits               -- { { file =, kind = "configured"|"issued", value = masked } }
--
-- Values shorter than MIN_LENGTH are left out (a spec's "x" is no secret and
-- would match everywhere).  Configured values are searched as plain
-- substrings; the (many) issued codes and tokens, which are word runs
-- (ac_…, rt_…, sk_test_…), are looked up among each log's word runs.
local fake = require "stripe_connect.fake"
local files = require "support.files"

local M = {}

M.MIN_LENGTH = 8

local function list(dir, pattern)
  local p = assert(io.popen("find '" .. dir .. "' -maxdepth 1 -type f -name '" .. pattern .. "' 2>/dev/null | sort"))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function lines_of(path, into)
  for line in (files.read(path) or ""):gmatch("[^\n]+") do
    if #line >= M.MIN_LENGTH then into[line] = true end
  end
end

-- The first and last characters only, so a report shows which value leaked
-- without leaking it again.
local function mask(v)
  return v:sub(1, 6) .. "…" .. v:sub(-2) .. " (" .. #v .. " chars)"
end

function M.run(dir)
  local configured, issued = {}, {}
  for _, f in ipairs(list(dir, "*.secrets")) do lines_of(f, configured) end
  for _, f in ipairs(list(dir, "*.issued")) do lines_of(f, issued) end
  configured[fake.DEFAULTS.secret_key] = true
  for _, w in ipairs(fake.DEFAULTS.webhook_secrets) do configured[w] = true end
  local r = { logs = 0, bytes = 0, secrets = 0, issued = 0, hits = {} }
  for _ in pairs(configured) do r.secrets = r.secrets + 1 end
  for _ in pairs(issued) do r.issued = r.issued + 1 end
  local logs = list(dir, "*.log")
  for _, f in ipairs(list(dir, "*.out")) do logs[#logs + 1] = f end
  for _, f in ipairs(logs) do
    local text = files.read(f) or ""
    r.logs, r.bytes = r.logs + 1, r.bytes + #text
    for v in pairs(configured) do
      if text:find(v, 1, true) then r.hits[#r.hits + 1] = { file = f, kind = "configured", value = mask(v) } end
    end
    for word in text:gmatch("[%w_]+") do
      if issued[word] then r.hits[#r.hits + 1] = { file = f, kind = "issued", value = mask(word) } end
    end
  end
  return r
end

-- report(r) -> one line per hit (for an assertion message).
function M.report(r)
  local out = {}
  for _, h in ipairs(r.hits) do out[#out + 1] = ("%s: %s secret %s"):format(h.file, h.kind, h.value) end
  return table.concat(out, "\n")
end

return M
