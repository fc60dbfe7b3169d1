-- The outbound HTTP client (core.http_request) against local upstreams, in
-- both of its modes: synchronous (this spec process, `stripe-connect run`)
-- and yielding inside a `serve` handler (through the front app's /call).
-- Same calls, same documented results.
local lu = require "luaunit"
local cjson = require "cjson"
local socket = require "socket"
local core = require "stripe_connect.core"
local server = require "support.server"

local upstream, front, raw_port, raw_pid, tls_port, tls_pid, tls_dir

local function start_raw()
  raw_pid, raw_port = server.run_listener("spec/support/raw_upstream.lua")
end

-- A self-signed TLS server for 127.0.0.1 (`openssl s_server -www`).
local function start_tls()
  tls_dir = os.tmpname()
  os.remove(tls_dir)
  assert(os.execute("mkdir -p " .. tls_dir .. " && openssl req -x509 -newkey rsa:2048 -nodes -days 1"
    .. " -keyout " .. tls_dir .. "/key.pem -out " .. tls_dir .. "/cert.pem -subj /CN=127.0.0.1"
    .. " -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"))
  tls_port = server.free_port()
  local p = io.popen(("openssl s_server -quiet -www -accept 127.0.0.1:%d -cert %s/cert.pem -key %s/key.pem"
    .. " >/dev/null 2>&1 & echo $!"):format(tls_port, tls_dir, tls_dir))
  tls_pid = p:read("l")
  p:close()
  assert(server.poll(function()
    local c = socket.connect("127.0.0.1", tls_port)
    if c then c:close() end
    return c ~= nil
  end, 10), "openssl s_server did not start")
end

-- Two ways to make the same call.
local modes = {
  run = function(opts, times)
    local out = {}
    for i = 1, times or 1 do
      local res, err, code = core.http_request(opts)
      out[i] = res and { res = res } or { err = err, code = code }
    end
    return out
  end,
  serve = function(opts, times)
    local res = assert(core.http_request{ method = "POST", url = front.url .. "/call",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode{ opts = opts, times = times or 1 } })
    assert(res.status == 200, res.body)
    return cjson.decode(res.body)
  end,
}

local function suite(mode)
  local call = modes[mode]
  local T = {}

  function T.test_json_post()
    local out = call{ method = "POST", url = upstream.url .. "/json",
                      headers = { ["Content-Type"] = "application/json" },
                      body = cjson.encode{ amount = 100, currency = "usd" } }
    local res = assert(out[1].res, out[1].err)
    lu.assertEquals(res.status, 201)
    lu.assertEquals(res.headers["content-type"], "application/json")
    lu.assertEquals(res.headers["x-rep"], "a, b")
    lu.assertEquals(res.headers["set-cookie"], { "c1=1; Path=/", "c2=2" })
    local body = cjson.decode(res.body)
    lu.assertEquals(body.got, { amount = 100, currency = "usd" })
    lu.assertEquals(body.method, "POST")
    lu.assertEquals(body.content_type, "application/json")
  end

  function T.test_keep_alive_reuses_one_connection()
    local out = call({ url = upstream.url .. "/conn" }, 5)
    lu.assertEquals(#out, 5)
    local port = out[1].res.headers["x-remote-port"]
    lu.assertNotNil(port)
    for i = 2, 5 do
      lu.assertEquals(out[i].res.headers["x-remote-port"], port, "call " .. i)
    end
    -- and across separate calls (a later request on the same worker)
    local again = call{ url = upstream.url .. "/conn" }
    lu.assertEquals(again[1].res.headers["x-remote-port"], port)
  end

  function T.test_error_status_is_a_response()
    for _, status in ipairs{ 400, 404, 500, 503 } do
      local out = call{ url = upstream.url .. "/status/" .. status }
      lu.assertEquals(out[1].res.status, status)
      lu.assertEquals(out[1].res.body, "status " .. status)
    end
  end

  function T.test_transport_failures()
    local rows = {
      -- name, options, code, message prefix
      { "timeout", { url = upstream.url .. "/slow?s=2", timeout = 0.2 }, "timeout" },
      { "connection refused", { url = "http://127.0.0.1:" .. server.free_port() .. "/" }, "connect" },
      { "closed mid-response", { url = "http://127.0.0.1:" .. raw_port .. "/partial" }, "reset" },
      { "reset mid-response", { url = "http://127.0.0.1:" .. raw_port .. "/rst" }, "reset" },
      { "closed without answer", { url = "http://127.0.0.1:" .. raw_port .. "/nothing" }, "reset" },
      { "response too large", { url = upstream.url .. "/big?n=5000", max_size = 1000 }, "too_large" },
      { "not http", { url = "ftp://127.0.0.1/" }, "failed" },
    }
    for _, r in ipairs(rows) do
      local out = call(r[2])
      lu.assertNil(out[1].res, r[1])
      lu.assertEquals(out[1].code, r[3], r[1] .. ": " .. tostring(out[1].err))
      lu.assertStrMatches(out[1].err, r[3] .. ": .+", nil, nil, r[1])
    end
    local out = call{ url = upstream.url .. "/big?n=5000", max_size = 1000 }
    lu.assertEquals(out[1].err, "too_large: response exceeds 1000 bytes")
  end

  function T.test_tls_verification_is_on_by_default()
    local url = "https://127.0.0.1:" .. tls_port .. "/"
    local out = call{ url = url }
    lu.assertEquals(out[1].code, "tls", tostring(out[1].err))
    lu.assertStrContains(out[1].err, "certificate")
    out = call{ url = url, ca_file = tls_dir .. "/cert.pem" }
    lu.assertEquals(out[1].res and out[1].res.status, 200, tostring(out[1].err))
    out = call{ url = url, verify = false }
    lu.assertEquals(out[1].res and out[1].res.status, 200, tostring(out[1].err))
  end

  function T.test_a_big_body_within_the_cap()
    local out = call{ url = upstream.url .. "/big?n=300000" }
    lu.assertEquals(#out[1].res.body, 300000)
  end

  return T
end

local TestHttpClientRun = suite("run")
local TestHttpClientServe = suite("serve")

local function start_servers()
  if upstream then return end
  upstream = server.start{ app = "spec/support/apps/serve_upstream.lua", args = { "--workers", "1" } }
  front = server.start{ app = "spec/support/apps/serve_basic.lua", args = { "--workers", "1" } }
  start_raw()
  start_tls()
end
TestHttpClientRun.setupClass = start_servers
TestHttpClientServe.setupClass = start_servers

function TestHttpClientServe.teardownClass()
  lu.assertEquals(front:stop(), 0)
  lu.assertEquals(upstream:stop(), 0)
  os.execute("kill " .. raw_pid .. " " .. tls_pid .. " 2>/dev/null; rm -rf " .. tls_dir)
  upstream, front = nil, nil
end

function TestHttpClientRun.test_misuse_raises()
  local rows = {
    { { url = "http://127.0.0.1/", bogus = 1 }, "unknown option 'bogus'" },
    { { method = "GET" }, "'url' is required" },
    { { url = "http://127.0.0.1/", headers = { ["X-A"] = "a\r\nX-B: b" } }, "CR, LF" },
    { { url = "http://127.0.0.1/", timeout = -1 }, "positive number" },
    { { url = "http://127.0.0.1/", verify = "no" }, "boolean" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(core.http_request, r[1])
    lu.assertFalse(ok)
    lu.assertStrContains(err, r[2])
  end
end

-- luaunit runs classes in name order: the servers stop after Serve.
return { TestHttpClientRun = TestHttpClientRun, TestHttpClientServe = TestHttpClientServe }
