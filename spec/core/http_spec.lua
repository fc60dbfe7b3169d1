-- core.http_request / core.sleep without a server: option checking (misuse
-- raises), transport failures (nil, message, code).  The behaviour against
-- real upstreams is in spec/integration/serve_client_spec.lua.  Runs under
-- Lua 5.4 and LuaJIT.
local lu = require "luaunit"
local core = require "stripe_connect.core"

local TestHttpCore = {}

function TestHttpCore.test_misuse_raises()
  local rows = {
    -- name, options, message fragment
    { "unknown key", { url = "http://127.0.0.1:1/", retries = 3 }, "unknown option 'retries'" },
    { "no url", { method = "GET" }, "'url' is required" },
    { "url not a string", { url = 42 }, "'url' must be a string" },
    { "bad method", { url = "http://127.0.0.1:1/", method = "GE T" }, "invalid method" },
    { "header injection", { url = "http://127.0.0.1:1/", headers = { A = "x\r\nB: y" } }, "CR, LF" },
    { "bad header name", { url = "http://127.0.0.1:1/", headers = { ["A B"] = "x" } }, "invalid header name" },
    { "headers not a table", { url = "http://127.0.0.1:1/", headers = "A: b" }, "must be a table" },
    { "timeout zero", { url = "http://127.0.0.1:1/", timeout = 0 }, "positive number" },
    { "verify not boolean", { url = "http://127.0.0.1:1/", verify = 0 }, "boolean" },
    { "body not a string", { url = "http://127.0.0.1:1/", body = {} }, "'body' must be a string" },
    { "max_size zero", { url = "http://127.0.0.1:1/", max_size = 0 }, "positive number" },
    { "max_size NaN", { url = "http://127.0.0.1:1/", max_size = 0 / 0 }, "positive number" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(core.http_request, r[2])
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(err, r[3], false, r[1])
  end
  lu.assertFalse(pcall(core.http_request))
  lu.assertFalse(pcall(core.http_request, "http://127.0.0.1:1/"))
end

function TestHttpCore.test_transport_failures_return_nil_message_code()
  local rows = {
    { "connection refused", { url = "http://127.0.0.1:1/" }, "connect" },
    { "not http", { url = "ftp://127.0.0.1:1/" }, "failed" },
    { "not a url", { url = "::nonsense" }, "failed" },
    -- bug: a max_size past size_t was cast unchecked (undefined behaviour)
    { "max_size beyond size_t", { url = "http://127.0.0.1:1/", max_size = 1e30 }, "connect" },
    { "max_size infinite", { url = "http://127.0.0.1:1/", max_size = math.huge }, "connect" },
  }
  for _, r in ipairs(rows) do
    local res, msg, code = core.http_request(r[2])
    lu.assertNil(res, r[1])
    lu.assertEquals(code, r[3], r[1] .. ": " .. tostring(msg))
    lu.assertEquals(msg:sub(1, #r[3] + 2), r[3] .. ": ", r[1])
  end
end

function TestHttpCore.test_sleep()
  lu.assertNil(core.sleep(0))
  lu.assertNil(core.sleep(0.001))
  lu.assertFalse(pcall(core.sleep, -1))
  lu.assertFalse(pcall(core.sleep, "soon"))
end

return { TestHttpCore = TestHttpCore }
