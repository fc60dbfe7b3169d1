-- scripts/bench/wrk.lua — the wrk script every bench row runs (wrk 4, LuaJIT).
-- Configured through the environment, which scripts/bench/run.lua sets:
--
--   BENCH_MODE     get | callback | webhook
--   BENCH_PATH     get: the request path (e.g. /connect)
--   BENCH_FILE     callback: lines "STATE BINDING" (a fresh pair per request);
--                  webhook:  lines "STRIPE-SIGNATURE<TAB>BODY" (unique event ids)
--   BENCH_THREADS  wrk's -t: thread N of T sends lines N, N+T, N+2T, … so no
--                  two requests share a line until a thread has used all of its
--                  own (then it starts over and counts `reused`)
--   BENCH_EXPECT   optional: the status every answer must have (a response hook
--                  counts the others as `unexpected`)
--   BENCH_SKIP     optional: lines each thread skips first (those a warm-up
--                  run already sent)
--   BENCH_LIMIT    optional: answers per thread, then the thread stops (the
--                  smoke's request-count mode; wrk still waits out -d)
--
-- The response hook is only installed with BENCH_EXPECT or BENCH_LIMIT: it makes
-- wrk hand every answer's headers and body to Lua, which costs the load
-- generator CPU it shares with the server.  Without it, errors are wrk's own
-- counts: socket errors (connect, read, write, timeout) and statuses >= 400.
--
-- done() prints one line for run.lua:
--   bench: requests=N duration_us=N connect=N read=N write=N timeout=N status=N
--          unexpected=N reused=N taken_max=N p50_us=N p99_us=N
-- (taken_max: the most lines one thread took, the next run's BENCH_SKIP).
local mode = os.getenv("BENCH_MODE") or "get"
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local expect = tonumber(os.getenv("BENCH_EXPECT") or "")
local limit = tonumber(os.getenv("BENCH_LIMIT") or "")
local skip = tonumber(os.getenv("BENCH_SKIP") or "") or 0

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  threads[#threads + 1] = thread
end

local lines, n, i = {}, 0, 0
local fixed, wrapped
local answered = 0
-- The one global besides wrk's own: what done() reads back with thread:get.
counts = { unexpected = 0, reused = 0, taken = 0 }
local c = counts

function init(args)
  if mode == "get" then
    fixed = wrk.format("GET", os.getenv("BENCH_PATH") or "/")
    return
  end
  local file = assert(os.getenv("BENCH_FILE"), "BENCH_FILE is not set")
  local k = 0
  for line in io.lines(file) do
    if k % nthreads == (id - 1) then
      n = n + 1
      lines[n] = line
    end
    k = k + 1
  end
  assert(n > 0, "BENCH_FILE has no line for thread " .. tostring(id))
  i = skip % n
  wrapped = skip >= n
end

local callback_headers = { Cookie = "" }
local webhook_headers = { ["Content-Type"] = "application/json", ["Stripe-Signature"] = "" }

function request()
  if fixed then return fixed end
  c.taken = c.taken + 1
  i = i + 1
  if i > n then i = 1; wrapped = true end
  if wrapped then c.reused = c.reused + 1 end
  local line = lines[i]
  if mode == "callback" then
    local st, binding = line:match("^(%S+) (%S+)$")
    callback_headers.Cookie = "sc_bind=" .. binding
    return wrk.format("GET", "/oauth/callback?code=ac_bench&state=" .. st, callback_headers)
  else
    local sig, body = line:match("^([^\t]+)\t(.*)$")
    webhook_headers["Stripe-Signature"] = sig
    return wrk.format("POST", "/webhooks", webhook_headers, body)
  end
end

if expect or limit then
  function response(status)
    answered = answered + 1
    if expect and status ~= expect then c.unexpected = c.unexpected + 1 end
    if limit and answered >= limit then wrk.thread:stop() end
  end
end

function done(summary, latency)
  local unexp, reuse, most = 0, 0, 0
  for _, t in ipairs(threads) do
    local tc = t:get("counts")
    unexp = unexp + tc.unexpected
    reuse = reuse + tc.reused
    most = math.max(most, tc.taken)
  end
  local e = summary.errors
  io.write(string.format("bench: requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d status=%d " ..
    "unexpected=%d reused=%d taken_max=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    unexp, reuse, most, latency:percentile(50), latency:percentile(99)))
end
