-- stripe_connect.log — one line per event, with fixed field names, in the
-- format `serve --log-format` chose (core.log_format: "logfmt" or "json";
-- "text", the default, writes logfmt too), beside the host's own lines.
--
--   local log = require("stripe_connect.log").new{ app = "platform", secrets = {…} }
--   log.event("connected", req, { account = "acct_…" })   -- level info
--   log.event("state_rejected", req, { reason = "expired" }, "warn")
--   log.message("free text")                               -- event="log"
--
-- Every line has ts, level, app, event and request_id (req.request_id, the
-- host's X-Request-Id; "-" without a request), then the event's fields in
-- the order of FIELDS, then any others sorted by name.  app is
-- core.app_name under `serve` (APP.lua's base name: "platform",
-- "fake_connect"), else opts.app.  Every value passes through util.redact
-- with the configured secrets: no key, secret, code or token is written.
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local M = {}

-- The fixed fields, in line order, after ts, level, app, event, request_id.
M.FIELDS = { "account", "source", "reason", "stripe_error", "status", "event_id", "event_type", "owner", "message" }

local FIXED = { ts = true, level = true, app = true, event = true, request_id = true }
for _, f in ipairs(M.FIELDS) do FIXED[f] = true end

local function logfmt_value(v)
  local s = tostring(v)
  if s ~= "" and s:match("^[%w%._:/@%-]+$") then return s end
  return '"' .. s:gsub('[%c"\\]', function(ch)
    if ch == '"' or ch == "\\" then return "\\" .. ch end
    if ch == "\n" then return "\\n" end
    return string.format("\\x%02x", ch:byte())
  end) .. '"'
end

local function json_value(v)
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return (require("cjson").encode(tostring(v)))
end

-- line(format, fields in order: { {name, value}, … }) -> the text (no newline).
function M.format(format, pairs_list)
  local out = {}
  if format == "json" then
    for _, kv in ipairs(pairs_list) do out[#out + 1] = json_value(kv[1]) .. ":" .. json_value(kv[2]) end
    return "{" .. table.concat(out, ",") .. "}"
  end
  for _, kv in ipairs(pairs_list) do out[#out + 1] = kv[1] .. "=" .. logfmt_value(kv[2]) end
  return table.concat(out, " ")
end

-- new{ app=, secrets=, write=, format=, clock= } -> { event, message, format }
--   write(line): default one write to stderr (newline added).
function M.new(opts)
  opts = util.check_opts(opts, { app = true, secrets = true, write = true, format = true, clock = true }, "log.new")
  local app = core.app_name or opts.app or "stripe-connect"
  local format = opts.format or core.log_format
  if format ~= "json" then format = "logfmt" end
  local secrets = opts.secrets or {}
  local write = opts.write or function(line) io.stderr:write(line .. "\n") end
  local clock = opts.clock or os.time

  local function redact(v)
    if type(v) == "number" or type(v) == "boolean" then return v end
    return util.redact(tostring(v), secrets)
  end

  local L = { format = format }

  function L.event(name, req, fields, level)
    fields = fields or {}
    local list = {
      { "ts", os.date("!%Y-%m-%dT%H:%M:%SZ", clock()) }, { "level", level or "info" }, { "app", app },
      { "event", name }, { "request_id", type(req) == "table" and req.request_id or "-" },
    }
    for _, f in ipairs(M.FIELDS) do
      if fields[f] ~= nil then list[#list + 1] = { f, redact(fields[f]) } end
    end
    for _, k in ipairs(util.sorted_keys(fields)) do
      if not FIXED[k] then list[#list + 1] = { k, redact(fields[k]) } end
    end
    write(M.format(format, list))
  end

  function L.message(msg, req, level)
    L.event("log", req, { message = msg }, level)
  end

  return L
end

return M
