-- A small app for the serve specs: routes, params, args, cookies, echo,
-- sleep, errors, a runaway loop, an outbound proxy call.
local core = require "stripe_connect.core"
local cjson = require "cjson"

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
