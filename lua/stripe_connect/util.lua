-- stripe_connect.util — small helpers shared by the platform modules (state,
-- store, flow, app, oauth, the fake): option-table checks, HTML escaping,
-- local-path checks, form encoding.
-- Internal: the public API is in the modules that use these.
local core = require "stripe_connect.core"

local M = {}

-- check_opts(opts, allowed, where) -> opts (or {} when nil).
-- Raises on a non-table or on a key not in `allowed` (a set: name -> true).
function M.check_opts(opts, allowed, where)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(where .. ": options must be a table", 3)
  end
  for k in pairs(opts) do
    if not allowed[k] then
      error(where .. ": unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  return opts
end

local html_escapes = {
  ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;",
}

-- html(s) -> s with & < > " ' escaped (nil becomes "").
function M.html(s)
  if s == nil then return "" end
  return (tostring(s):gsub("[&<>\"']", html_escapes))
end

-- is_local_path(p) -> true when p is a path on this site: starts with a single
-- "/", no "//" anywhere, no backslash, no control characters or spaces, and
-- at most 512 bytes.  "/a/b?x=1#f" passes; "//evil", "/\\evil",
-- "https://x", "javascript:" do not.
function M.is_local_path(p)
  if type(p) ~= "string" or #p == 0 or #p > 512 then return false end
  if p:sub(1, 1) ~= "/" then return false end
  if p:find("//", 1, true) or p:find("\\", 1, true) then return false end
  if p:find("[%c%s]") then return false end
  -- Percent-encoded slashes or backslashes could be decoded by someone later.
  local lower = p:lower()
  if lower:find("%2f", 1, true) or lower:find("%5c", 1, true) then return false end
  return true
end

-- copy(v) -> a deep copy of plain data (tables of strings/numbers/booleans).
function M.copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = M.copy(x) end
  return t
end

-- sorted_keys(t) -> t's keys in sort order (strings, or numbers).
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- redact(s, secrets [, min_bytes]) -> s with Stripe keys (sk_/rk_), webhook
-- secrets (whsec_), each secret in `secrets` (plain text, min_bytes or more:
-- default 8), and long ac_/rt_ codes and tokens replaced by "[redacted]":
-- the core's redactor (core.redact), the same one the host's error lines
-- pass.  Log lines carry error text from hooks, stores and Stripe, which
-- could hold any of them.
function M.redact(s, secrets, min_bytes)
  return core.redact(tostring(s), secrets, min_bytes)
end

-- encode_fields({ { name, value }, … }) -> "name=value&…": a form body or
-- query string, the fields in the order given, each value percent-encoded
-- (core.url_encode; the names as given, so brackets stay literal); a field
-- whose value is nil is left out ({} -> "").
function M.encode_fields(fields)
  local parts = {}
  for _, f in ipairs(fields) do
    if f[2] ~= nil then parts[#parts + 1] = f[1] .. "=" .. core.url_encode(f[2]) end
  end
  return table.concat(parts, "&")
end

-- split_list("a, b,,c") -> { "a", "b", "c" }: a comma-separated setting,
-- each item trimmed, empty items dropped (nil -> {}).
function M.split_list(s)
  local out = {}
  for item in tostring(s or ""):gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

-- stderr_log(msg): the default log of the library's modules, a line on stderr.
function M.stderr_log(msg)
  io.stderr:write(msg, "\n")
end

-- redacting_log(log, secrets) -> a log function that passes every line
-- through redact first (log defaults to stderr_log).
function M.redacting_log(log, secrets)
  log = log or M.stderr_log
  return function(msg) log(M.redact(msg, secrets)) end
end

-- json_response(status, value | already-encoded JSON text) -> res: a JSON
-- answer that is never cached.
function M.json_response(status, value)
  return { status = status, headers = { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" },
    body = type(value) == "string" and value or assert(require("cjson.safe").encode(value)) }
end

-- json_data_list(list) -> '{"data":[…]}' (lua-cjson 2.1.0 encodes an empty
-- table as {}, so the empty list is written by hand).
function M.json_data_list(list)
  if #list == 0 then return '{"data":[]}' end
  return require("cjson").encode({ data = list })
end

return M
