-- A small app for the serve specs: routes, params, args, cookies, echo,
-- sleep, errors, a runaway loop, an outbound proxy call.
local core = require "stripe_connect.core"
local cjson = require "cjson"

-- Responses a careless handler might return: each answers 500 unless noted.
local ODD = {
  ["header-crlf"] = function() return { headers = { ["X-A"] = "a\r\nX-Injected: 1" }, body = "x" } end,
  ["header-lf"] = function() return { headers = { ["X-A"] = "a\nX-Injected: 1" }, body = "x" } end,
  ["header-nul"] = function() return { headers = { ["X-A"] = "a\0b" }, body = "x" } end,
  ["cookie-crlf"] = function() return { headers = { ["Set-Cookie"] = { "a=1", "b=2\r\nX-Injected: 1" } } } end,
  ["header-name"] = function() return { headers = { ["X A"] = "v" } } end,
  ["header-bool"] = function() return { headers = { ["X-A"] = true } } end,
  ["headers-string"] = function() return { headers = "X-A: 1" } end,
  ["status-99"] = function() return { status = 99 } end,
  ["status-600"] = function() return { status = 600 } end,
  ["status-string"] = function() return { status = "200" } end,
  ["status-fraction"] = function() return { status = 200.5 } end,
  ["status-nan"] = function() return { status = 0 / 0 } end,
  ["body-number"] = function() return { body = 42 } end,
  ["string"] = function() return "hello" end,
  ["nothing"] = function() end,
  -- these are fine:
  ["status-float"] = function() return { status = 201.0, body = "float" } end,   -- as cjson decodes
  ["header-number"] = function() return { headers = { ["X-N"] = 5, ["X-F"] = 1.5, ["X-I"] = 2.0 }, body = "n" } end,
  ["metatables"] = function()  -- read as Lua reads them: __index, __pairs, ipairs through __index
    local values = setmetatable({}, { __index = function(_, i) if i <= 2 then return "v" .. i end end })
    local headers = setmetatable({}, { __pairs = function()
      return next, { ["X-Pairs"] = "yes", ["X-List"] = values }, nil
    end })
    return setmetatable({}, { __index = { status = 202, headers = headers, body = "meta" } })
  end,
  ["framing"] = function()     -- the server's framing wins over the handler's
    return { headers = { ["Content-Length"] = "1", ["Transfer-Encoding"] = "chunked",
                         Connection = "close", Date = "yesterday" }, body = "framed" }
  end,
  ["no-content"] = function() return { status = 204, body = "dropped" } end,
  ["huge"] = function() return { body = string.rep("0123456789", 500000) } end,   -- 5 MB
}

local function json(t, status)
  return { status = status or 200, headers = { ["Content-Type"] = "application/json" },
           body = cjson.encode(t) }
end

return {
  { "GET", "/hello", function(req)
      return { headers = { ["Content-Type"] = "text/plain", ["Set-Cookie"] = { "a=1", "b=2; Path=/" } },
               body = "hello " .. tostring(req.args.name or "world") }
    end },
  { "*", "/echo", function(req)
      return json{ method = req.method, path = req.path, query = req.query, args = req.args,
                   headers = req.headers, cookies = req.cookies, body = req.body,
                   remote_addr = req.remote_addr }
    end },
  { "GET", "^/users/(%w+)/(%d+)$", function(req) return json{ params = req.params } end },
  { "GET", "/sleep", function(req)
      core.sleep(tonumber(req.args.s) or 0.1)
      return { body = "slept" }
    end },
  -- writes the file named by ?file= on entry (the spec knows it is in flight), then sleeps
  { "GET", "/slow-marker", function(req)
      local f = assert(io.open(req.args.file, "w"))
      f:close()
      core.sleep(tonumber(req.args.s) or 1)
      return { body = "slept" }
    end },
  -- a coroutine of the handler's own: core.sleep cannot yield the request, so it blocks
  { "GET", "/nested", function()
      local f = coroutine.wrap(function() core.sleep(0.001) return "nested ok" end)
      return { body = f() }
    end },
  -- yielding through pcall and a non-yieldable C boundary (table.sort's comparator)
  { "GET", "/pcall-sleep", function()
      local ok = pcall(core.sleep, 0.001)
      local t = { 3, 1, 2 }
      table.sort(t, function(a, b) core.sleep(0) return a < b end)
      return { body = tostring(ok) .. " " .. table.concat(t, ",") }
    end },
  { "GET", "/boom", function() error("kaboom sk_test_DoNotLeak123") end },
  { "GET", "/loop", function() while true do end end },
  { "GET", "/pcall-loop", function() while true do pcall(function() while true do end end) end end },
  { "GET", "/bad-response", function() return { status = "x" } end },
  -- runaways in coroutines of the handler's own (they do not carry the request)
  { "GET", "/co-loop", function()
      coroutine.wrap(function() while true do end end)()
      return { body = "unreachable" }
    end },
  { "GET", "/co-resume-loop", function()
      local ok, err = coroutine.resume(coroutine.create(function() while true do end end))
      return { body = "caught: " .. tostring(ok) .. " " .. tostring(err) }
    end },
  -- odd responses, by name (see ODD below)
  { "GET", "^/odd/([%w-]+)$", function(req) return ODD[req.params[1]]() end },
  { "GET", "/env", function() return { body = os.getenv("SERVE_SPEC_VALUE") or "" } end },
  { "GET", "/proxy", function(req)
      local res, err, code = core.http_request{ url = req.args.url, timeout = tonumber(req.args.timeout) }
      if not res then return json({ error = err, code = code }, 502) end
      return json{ status = res.status, body = res.body, headers = res.headers }
    end },
  -- POST {"opts": {...http_request options}, "times": N}: N calls in this handler;
  -- answers [{"res": res} or {"err": message, "code": code}, ...].
  { "POST", "/call", function(req)
      local spec = cjson.decode(req.body)
      local out = {}
      for i = 1, spec.times or 1 do
        local res, err, code = core.http_request(spec.opts)
        out[i] = res and { res = res } or { err = err, code = code }
      end
      return json(out)
    end },
}
