-- An upstream for the serve and http-client specs; run it with
-- `--workers 1` (the hold/release state lives in this lua_State).
--   POST /json          echo a JSON body (201, repeated headers, two cookies)
--   GET  /conn          the caller's source port (X-Remote-Port): connection identity
--   GET  /slow?s=N      answer after N seconds
--   GET  /status/NNN    answer with that status
--   GET  /big?n=N       an N-byte body
--   GET  /hold?g=G&i=I  wait until /release?g=G, then answer "released I"
--   GET  /held?g=G      how many /hold requests of group G are waiting
--   POST /release?g=G   release group G
local core = require "stripe_connect.core"
local cjson = require "cjson"

local held, released = {}, {}

local function text(body, status, headers)
  headers = headers or {}
  headers["Content-Type"] = "text/plain"
  return { status = status or 200, headers = headers, body = body }
end

return {
  { "POST", "/json", function(req)
      return { status = 201,
               headers = { ["Content-Type"] = "application/json", ["X-Rep"] = { "a", "b" },
                           ["Set-Cookie"] = { "c1=1; Path=/", "c2=2" } },
               body = cjson.encode{ got = cjson.decode(req.body), method = req.method,
                                    content_type = req.headers["content-type"] } }
    end },
  { "GET", "/conn", function(req)
      return text(tostring(req.remote_port), 200, { ["X-Remote-Port"] = tostring(req.remote_port) })
    end },
  { "GET", "/slow", function(req)
      core.sleep(tonumber(req.args.s) or 1)
      return text("slow done")
    end },
  { "GET", "^/status/(%d+)$", function(req)
      return text("status " .. req.params[1], tonumber(req.params[1]))
    end },
  { "GET", "/big", function(req) return text(string.rep("x", tonumber(req.args.n) or 0)) end },
  { "GET", "/hold", function(req)
      local g = req.args.g or ""
      held[g] = (held[g] or 0) + 1
      while not released[g] do core.sleep(0.01) end
      held[g] = held[g] - 1
      return text("released " .. tostring(req.args.i))
    end },
  { "GET", "/held", function(req) return text(tostring(held[req.args.g or ""] or 0)) end },
  { "POST", "/release", function(req)
      released[req.args.g or ""] = true
      return text("ok")
    end },
}
