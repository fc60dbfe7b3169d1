-- `make bench`'s scripts (scripts/bench/) end to end in request-count mode: a
-- few hundred requests per row against nginx's static 302, the platform with
-- SQLite and memory: (and inside nginx, scripts/openresty/serve), the Express peer (its npm packages installed from the
-- registry, better-sqlite3 built from source) and the slow token stand-in,
-- with every answer's status checked (302, 303, 200).  Behaviour only: every
-- row filled, zero errors, the table printed and written; never timing or
-- ratios.  Skipped, with a message, only when node or npm is absent.
local lu = require "luaunit"
local files = require "support.files"
local server = require "support.server"
local stripe_node = require "support.stripe_node"

local ROWS = {
  "ceiling", "ours-connect-sqlite", "ours-connect-memory", "nginx-connect-sqlite", "peer-connect",
  "ours-callback-sqlite", "ours-callback-memory", "ours-callback-postgres-2hosts", "nginx-callback-sqlite",
  "peer-callback",
  "ours-webhooks-sqlite", "ours-webhooks-memory", "peer-webhooks",
  "ours-slow-sqlite", "peer-slow",
}

-- The bench's npm folder sits next to the specs' one (BUILD may be elsewhere).
local NODE_DIR = (stripe_node.NODE_DIR:match("^(.*)/[^/]+$") or "build") .. "/bench/peer-node"

local run -- { out = stdout+stderr, code, table = BENCH_OUT's text, dir }

local function bench()
  if run then return run end
  local dir = files.tmpdir()
  local env = {
    BENCH_REQUESTS = 200, BENCH_DURATION = 3, BENCH_CONNECTIONS = 8, BENCH_THREADS = 2,
    BENCH_SLOW_CONNECTIONS = 40, BENCH_OUT = dir .. "/bench.md", BENCH_BIN = server.bin,
    BENCH_NODE_DIR = NODE_DIR,
  }
  local vars = {}
  for k, v in pairs(env) do vars[#vars + 1] = stripe_node.q(k .. "=" .. v) end
  local stdout = dir .. "/stdout"
  local ok, _, code = os.execute("env " .. table.concat(vars, " ") .. " " .. stripe_node.q(server.bin) ..
    " run scripts/bench/run.lua 2>" .. stripe_node.q(dir .. "/stderr") .. " >" .. stripe_node.q(stdout))
  run = { out = files.read(stdout) or "", log = files.read(dir .. "/stderr") or "", code = ok and 0 or code,
          table = files.read(env.BENCH_OUT), dir = dir }
  return run
end

-- table_rows(text) -> the Markdown table's body rows, each a list of cells.
local function table_rows(text)
  local rows = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("^| ") and not line:match("^| route |") then
      local cells = {}
      for cell in line:sub(2):gmatch("%s*(.-)%s*|") do cells[#cells + 1] = cell end
      rows[#rows + 1] = cells
    end
  end
  return rows
end

-- finished() -> the run (once per file), having checked that it exited 0.
local function finished()
  local ok, why = stripe_node.ensure({}) -- node and npm; the bench installs its own packages
  lu.skipIf(not ok, why)
  local r = bench()
  lu.assertEquals(r.code, 0, r.out .. r.log)
  return r
end

local TestBenchSmoke = {}

function TestBenchSmoke.teardownClass()
  if run then files.rmdir(run.dir) end
end

function TestBenchSmoke.test_every_row_filled_without_errors()
  local r = finished()
  local rows = table_rows(r.out)
  lu.assertEquals(#rows, #ROWS, r.out .. r.log)
  for i, cells in ipairs(rows) do
    local what = ROWS[i] .. ": " .. table.concat(cells, " | ")
    lu.assertStrMatches(cells[3], "[%d,]+", nil, nil, what)     -- req/s
    lu.assertStrMatches(cells[4], "%d+%.%d%d", nil, nil, what)  -- p50 ms
    lu.assertStrMatches(cells[5], "%d+%.%d%d", nil, nil, what)  -- p99 ms
    lu.assertEquals(cells[6], "0", what)                         -- errors (statuses checked)
    lu.assertStrMatches(cells[7], "%d+%.%d", nil, nil, what)    -- peak RSS MiB
    lu.assertTrue(tonumber(cells[7]) > 0, what)
  end
  -- Ours' rows (in the host and in nginx) carry both ratios, the peer's and the ceiling's none.
  for i, cells in ipairs(rows) do
    if ROWS[i]:match("^ours") or ROWS[i]:match("^nginx%-") then
      lu.assertStrMatches(cells[8], "%d+%.%d%d×", nil, nil, ROWS[i])
      lu.assertStrMatches(cells[9], "%d+%.%d%d×.*", nil, nil, ROWS[i])
    else
      lu.assertEquals(cells[8], "", ROWS[i])
    end
  end
end

function TestBenchSmoke.test_table_printed_and_written()
  local r = finished()
  lu.assertStrContains(r.out, "| route | server | req/s | p50 ms | p99 ms | errors | peak RSS MiB |")
  lu.assertStrContains(r.out, "Machine: ")
  lu.assertStrContains(r.out, "share these")
  lu.assertStrMatches(r.out, ".*\nSeveral hosts: 2 hosts on one PostgreSQL [%d.]+ behind nginx ÷ one host on SQLite, " ..
    "callbacks: %d+%.%d%d× .*")
  lu.assertNotNil(r.table, "BENCH_OUT was not written")
  lu.assertEquals(r.table, r.out)
  -- No secret the bench made up reaches its output or its log.
  lu.assertNil((r.out .. r.log):find("whsec_", 1, true))
  lu.assertNil((r.out .. r.log):find("sk_test_", 1, true))
end

return { TestBenchSmoke = TestBenchSmoke }
