-- stripe_connect.metrics — counters and a latency histogram per route, kept
-- in process memory (never in a store), and their Prometheus text.
--
--   incr(series, n)          counter series ("name" or 'name{k="v"}') += n (default 1)
--   observe(route, seconds)  one request of `route` into
--                            stripe_connect_request_duration_seconds{route=…}
--   clock()                  seconds for measuring (monotonic when the core has it)
--   snapshot()               -> { counters, histograms, bounds } (see host/core/metrics.c)
--   text([families])         -> Prometheus text exposition (format 0.0.4);
--                               families: # HELP lines and series always
--                               shown (M.FAMILIES: the platform's)
--   new(backend)             -> a registry of its own with the same functions
--                               (backend: a table with the core's metrics_*
--                               functions; nil: process-local Lua tables)
--   shared                   true when the module's registry is the core's
--
-- The module's own registry is the core's (core.metrics_add, …) when the
-- core has it: one per process, shared by all worker threads of `serve`, so
-- /metrics on any worker shows the totals.  Otherwise (a core without those
-- functions, as under nginx later) it falls back to Lua tables, per Lua state.
-- Either way the numbers start at zero when the process starts.  Misuse (a
-- bad series or value) raises; so does a series beyond the cap (1024).
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local M = {}

M.DURATION = "stripe_connect_request_duration_seconds"
M.BOUNDS = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
M.MAX_SERIES = 1024
M.MAX_HISTOGRAMS = 64

local NAME = "^[%a_:][%w_:]*"

-- Raises as luaL_checktype does when v is not of type `want`.
local function check_type(v, want, i, fname)
  if type(v) ~= want then
    error(string.format("bad argument #%d to '%s' (%s expected, got %s)", i, fname, want,
      v == nil and "no value" or type(v)), 3)
  end
end

-- Raises (at metrics_add's caller) unless series is name or name{labels}.
local function check_series(series)
  local nl = #(series:match(NAME) or "")
  if nl == 0 or #series > 255 or series:find("%c")
     or (nl < #series and not series:find("^{.*}$", nl + 1)) then
    error("metrics_add: series must be name or name{labels} (at most 255 bytes, no control characters)", 3)
  end
end

-- Raises (at metrics_add's caller) unless n is a whole number from 0 to 2^53.
local function check_count(n)
  if n ~= math.floor(n) or n < 0 or n > 2 ^ 53 then
    error("metrics_add: n must be a whole number from 0 to 2^53", 3)
  end
end

-- Raises (at metrics_observe's caller) unless name, labels and seconds are
-- a metric name, printable labels and a number from 0 to 1e6.
local function check_observation(name, labels, seconds)
  if name:match(NAME) ~= name or name == "" then
    error("metrics_observe: name must be a metric name", 3)
  end
  if labels:find("%c") or #name + 1 + #labels > 255 then
    error("metrics_observe: labels must be printable and name plus labels at most 254 bytes", 3)
  end
  if not (seconds >= 0 and seconds <= 1e6) then
    error("metrics_observe: seconds must be a number from 0 to 1e6", 3)
  end
end

-- One histogram: its sum and a count per bucket (the last one past the bounds).
local function new_histogram()
  local h = { sum = 0, counts = {} }
  for i = 1, #M.BOUNDS + 1 do h.counts[i] = 0 end
  return h
end

local function add_observation(h, seconds)
  local i = 1
  while i <= #M.BOUNDS and seconds > M.BOUNDS[i] do i = i + 1 end
  h.counts[i] = h.counts[i] + 1
  h.sum = h.sum + seconds
end

-- snapshot(counters, histograms) -> metrics_snapshot's table: copies, each
-- histogram with cumulative buckets, its sum and its count.
local function snapshot(counters, histograms)
  local out = { counters = {}, histograms = {}, bounds = {} }
  for k, v in pairs(counters) do out.counters[k] = v end
  for name, by_labels in pairs(histograms) do
    local t = {}
    for labels, h in pairs(by_labels) do
      local buckets, total = {}, 0
      for i = 1, #M.BOUNDS + 1 do
        total = total + h.counts[i]
        if i <= #M.BOUNDS then buckets[i] = total end
      end
      t[labels] = { buckets = buckets, sum = h.sum, count = total }
    end
    out.histograms[name] = t
  end
  for i, v in ipairs(M.BOUNDS) do out.bounds[i] = v end
  return out
end

-- The core's three functions over Lua tables (same checks, same shape).
local function lua_backend()
  local counters, histograms, nseries, nhist = {}, {}, 0, 0
  local b = {}

  local function new_series(kind)
    if nseries >= M.MAX_SERIES then error("metrics: too many metric series (at most 1024 per process)", 3) end
    if kind == "histogram" and nhist >= M.MAX_HISTOGRAMS then
      error("metrics: too many histograms (at most 64 per process)", 3)
    end
    nseries = nseries + 1
    if kind == "histogram" then nhist = nhist + 1 end
  end

  function b.metrics_add(series, n)
    check_type(series, "string", 1, "metrics_add")
    check_series(series)
    n = n == nil and 1 or n
    check_type(n, "number", 2, "metrics_add")
    check_count(n)
    if not counters[series] then new_series("counter"); counters[series] = 0 end
    counters[series] = counters[series] + n
  end

  function b.metrics_observe(name, labels, seconds)
    check_type(name, "string", 1, "metrics_observe")
    check_type(labels, "string", 2, "metrics_observe")
    check_type(seconds, "number", 3, "metrics_observe")
    check_observation(name, labels, seconds)
    local by_labels = histograms[name] or {}
    local h = by_labels[labels]
    if not h then
      new_series("histogram")
      h = new_histogram()
      histograms[name], by_labels[labels] = by_labels, h
    end
    add_observation(h, seconds)
  end

  function b.metrics_snapshot() return snapshot(counters, histograms) end
  return b
end

-- The Lua-table backend (its checks are the core's): stripe_connect.ngx checks
-- series with it before counting them in a shared dict.
M.lua_backend = lua_backend

-- A label value escaped for the exposition (\ " and newline).
local function label_value(s)
  return (s:gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local sorted_keys = util.sorted_keys

-- Appends one histogram family's lines (name, its labels -> histogram) to out.
local function histogram_lines(out, name, by_labels, bounds)
  out[#out + 1] = "# TYPE " .. name .. " histogram"
  for _, labels in ipairs(sorted_keys(by_labels)) do
    local h = by_labels[labels]
    local sep = labels == "" and "" or ","
    for i, le in ipairs(bounds) do
      out[#out + 1] = string.format('%s_bucket{%s%sle="%s"} %d', name, labels, sep,
        string.format("%g", le), h.buckets[i])
    end
    out[#out + 1] = string.format('%s_bucket{%s%sle="+Inf"} %d', name, labels, sep, h.count)
    local braces = labels == "" and "" or "{" .. labels .. "}"
    out[#out + 1] = string.format("%s_sum%s %.9g", name, braces, h.sum)
    out[#out + 1] = string.format("%s_count%s %d", name, braces, h.count)
  end
end

-- The platform's metric families (stripe_connect.app's /metrics renders
-- with them): name -> { help = "…", series = { series always shown, 0
-- until counted } }.  doc/reference.md's /metrics row (Routes) lists the same families.
M.FAMILIES = {
  stripe_connect_connect_total = { help = "GET /connect answers that sent the browser to Stripe's authorize page.",
    series = { "stripe_connect_connect_total" } },
  stripe_connect_callbacks_total = { help = "OAuth callbacks by outcome (connected, denied, rejected, error) and reason." },
  stripe_connect_token_calls_total = { help = "Authorization-code exchanges with Stripe by result (ok or the failure reason).",
    series = { 'stripe_connect_token_calls_total{result="ok"}' } },
  stripe_connect_refreshes_total = { help = "Access tokens refreshed (admin API, scripts).",
    series = { "stripe_connect_refreshes_total" } },
  stripe_connect_deauthorizations_total = {
    help = "Accounts marked disconnected, by source (admin, script, webhook, api).",
    series = { 'stripe_connect_deauthorizations_total{source="admin"}', 'stripe_connect_deauthorizations_total{source="api"}',
      'stripe_connect_deauthorizations_total{source="script"}', 'stripe_connect_deauthorizations_total{source="webhook"}' } },
  stripe_connect_webhooks_total = { help = "Webhook deliveries by result (processed, duplicate, processing, failed, rejected with its reason, ignored_livemode).",
    series = { 'stripe_connect_webhooks_total{result="processed"}', 'stripe_connect_webhooks_total{result="duplicate"}',
      'stripe_connect_webhooks_total{result="failed"}' } },
  stripe_connect_onboarding_total = { help = "Account Links onboarding steps by step and result." },
  [M.DURATION] = { help = "Seconds from a route's handler being called to its answer (time waiting on Stripe included)." },
}

-- Prometheus text of a snapshot: counters grouped by name, then histograms.
-- families (optional, as M.FAMILIES): a # HELP line for each family it
-- describes, and its declared series shown as 0 until counted.
local function render(snap, families)
  local by_name, counters = {}, snap.counters
  if families then
    counters = {}
    for k, v in pairs(snap.counters) do counters[k] = v end
    for _, f in pairs(families) do
      for _, series in ipairs(f.series or {}) do counters[series] = counters[series] or 0 end
    end
  end
  for series, value in pairs(counters) do
    local name = series:match(NAME)
    by_name[name] = by_name[name] or {}
    table.insert(by_name[name], string.format("%s %d", series, value))
  end
  local out = {}
  local function help(name)
    local f = families and families[name]
    if f and f.help then out[#out + 1] = "# HELP " .. name .. " " .. f.help end
  end
  for _, name in ipairs(sorted_keys(by_name)) do
    help(name)
    out[#out + 1] = "# TYPE " .. name .. " counter"
    table.sort(by_name[name])
    for _, line in ipairs(by_name[name]) do out[#out + 1] = line end
  end
  for _, name in ipairs(sorted_keys(snap.histograms)) do
    help(name)
    histogram_lines(out, name, snap.histograms[name], snap.bounds)
  end
  return #out > 0 and table.concat(out, "\n") .. "\n" or ""
end

-- new(backend) -> registry { incr, observe, snapshot, text, clock, shared }.
function M.new(backend)
  local b = (type(backend) == "table" and backend.metrics_add) and backend or lua_backend()
  local add, observe, snapshot = b.metrics_add, b.metrics_observe, b.metrics_snapshot
  local labels_of = {} -- route -> 'route="…"', built once per route
  local r = { shared = b == core }

  function r.incr(series, n) add(series, n) end

  function r.observe(route, seconds)
    local labels = labels_of[route]
    if not labels then
      if type(route) ~= "string" then error("metrics.observe: route must be a string", 2) end
      labels = 'route="' .. label_value(route) .. '"'
      labels_of[route] = labels
    end
    observe(M.DURATION, labels, seconds)
  end

  function r.snapshot() return snapshot() end
  function r.text(families) return render(snapshot(), families) end
  r.clock = core.monotonic or os.time
  return r
end

local default = M.new(core)
for k, v in pairs(default) do M[k] = v end

return M
