-- `stripe-connect serve`: routing, the request table, responses, errors,
-- the runaway-handler budget, the command line.  Real server on 127.0.0.1.
local lu = require "luaunit"
local cjson = require "cjson"
local socket = require "socket"
local server = require "support.server"
local http = require "support.http"

local APP = "spec/support/apps/serve_basic.lua"
local BIN = server.bin

-- One response from a raw socket: status, headers (lower-cased name -> array), body.
local function read_response(c)
  local status = tonumber(assert(c:receive("*l")):match("^HTTP/1%.1 (%d%d%d) "))
  local headers = {}
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    name = name:lower()
    headers[name] = headers[name] or {}
    table.insert(headers[name], value)
  end
  local n = tonumber(headers["content-length"] and headers["content-length"][1] or "0")
  return status, headers, n > 0 and assert(c:receive(n)) or ""
end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  return out:match("^(.-)rc=(%d+)%s*$")
end

local function suite(workers)
  local T = {}
  local s

  function T.setupClass()
    s = server.start{ app = APP, env = { SERVE_SPEC_VALUE = "from env" },
                      args = { "--workers", tostring(workers), "--max-instructions", "2000000" } }
  end

  function T.teardownClass()
    lu.assertEquals(s:stop(), 0)
  end

  function T.test_routes()
    local rows = {
      -- name, method, path, status, body pattern
      { "exact", "GET", "/hello?name=ann", 200, "^hello ann$" },
      { "HEAD falls back to GET", "HEAD", "/hello", 200, "^$" },
      { "pattern with captures", "GET", "/users/ab/12", 200, '"params":%["ab","12"%]' },
      { "pattern no match", "GET", "/users/ab/x", 404, "404" },
      { "unknown path", "GET", "/nope", 404, "404 Not Found" },
      { "other method", "POST", "/hello", 405, "405" },
      { "any method", "PATCH", "/echo", 200, '"method":"PATCH"' },
      { "environment", "GET", "/env", 200, "^from env$" },
      -- bug: new threads copied the main thread's uninitialised extra space
      { "handler's own coroutine", "GET", "/nested", 200, "^nested ok$" },
      { "yield through pcall, block in sort", "GET", "/pcall-sleep", 200, "^true 1,2,3$" },
    }
    for _, r in ipairs(rows) do
      local res = assert(http.request{ method = r[2], url = s.url .. r[3] })
      lu.assertEquals(res.status, r[4], r[1])
      lu.assertNotNil(res.body:find(r[5]), r[1] .. ": " .. res.body)
    end
    local res = assert(http.request{ method = "POST", url = s.url .. "/hello" })
    lu.assertEquals(res.headers.allow, "GET")
  end

  function T.test_request_table()
    local body = "raw\0bytes\r\nα=1&b=%ZZ"
    local res = assert(http.request{ method = "POST", url = s.url .. "/echo?a=1&a=2&b=x%20y&c",
      headers = { ["X-Thing"] = "One", Cookie = "sid=abc; theme=dark", ["Content-Type"] = "text/plain" },
      body = body })
    lu.assertEquals(res.status, 200)
    local e = cjson.decode(res.body)
    lu.assertEquals(e.method, "POST")
    lu.assertEquals(e.path, "/echo")
    lu.assertEquals(e.query, "a=1&a=2&b=x%20y&c")
    lu.assertEquals(e.args, { a = { "1", "2" }, b = "x y", c = "" })
    lu.assertEquals(e.headers["x-thing"], "One")
    lu.assertEquals(e.headers["content-type"], "text/plain")
    lu.assertEquals(e.cookies, { sid = "abc", theme = "dark" })
    lu.assertEquals(e.body, body)
    lu.assertEquals(e.remote_addr, "127.0.0.1")
  end

  function T.test_several_set_cookie_headers()
    local res = assert(http.get(s.url .. "/hello"))
    lu.assertEquals(res.headers["set-cookie"], { "a=1", "b=2; Path=/" })
    lu.assertEquals(res.headers["content-type"], "text/plain")
  end

  function T.test_raising_handler_answers_generic_500_then_next_is_fine()
    for _, path in ipairs{ "/boom", "/bad-response", "/loop", "/pcall-loop" } do
      local res = assert(http.get(s.url .. path))
      lu.assertEquals(res.status, 500, path)
      lu.assertEquals(res.body, "500 Internal Server Error\n", path)
      lu.assertNil(res.body:find("sk_test"), path)
      res = assert(http.get(s.url .. "/hello"))
      lu.assertEquals(res.status, 200, path)
    end
    local log = s:log_text()
    lu.assertStrContains(log, "kaboom sk_test_[redacted]")   -- the traceback is logged, the key masked (core.redact)
    lu.assertNil(log:find("DoNotLeak", 1, true))
    lu.assertStrContains(log, "stack traceback")
    lu.assertStrContains(log, "instruction budget")
  end

  -- bug: a runaway loop in a coroutine the handler made itself escaped the
  -- budget (new coroutines carry no request) and hung the worker for good
  function T.test_runaway_in_the_handlers_own_coroutine_answers_500()
    for _, path in ipairs{ "/co-loop", "/co-resume-loop" } do
      local res = assert(http.request{ url = s.url .. path, timeout = 20 })
      lu.assertEquals(res.status, 500, path)
      lu.assertEquals(res.body, "500 Internal Server Error\n", path)
      lu.assertEquals(assert(http.get(s.url .. "/hello")).status, 200, path)
    end
  end

  -- A header value with CR/LF must never split the response (no injected
  -- header reaches the client): it answers 500, as do other bad responses.
  function T.test_responses_that_break_the_contract_answer_500()
    for _, name in ipairs{ "header-crlf", "header-lf", "header-nul", "cookie-crlf", "header-name",
                           "header-bool", "headers-string", "status-99", "status-600", "status-string",
                           "status-fraction", "status-nan", "body-number", "string", "nothing" } do
      local res = assert(http.get(s.url .. "/odd/" .. name))
      lu.assertEquals(res.status, 500, name)
      lu.assertEquals(res.body, "500 Internal Server Error\n", name)
      lu.assertNil(res.headers["x-injected"], name)
      lu.assertNil(res.headers["x-a"], name)
    end
    lu.assertStrContains(s:log_text(), "response header X-A contains CR, LF or NUL")
  end

  function T.test_responses_the_server_frames_itself()
    local res = assert(http.get(s.url .. "/odd/status-float"))
    lu.assertEquals({ res.status, res.body }, { 201, "float" })
    res = assert(http.get(s.url .. "/odd/header-number"))
    lu.assertEquals(res.headers["x-n"], "5")
    lu.assertEquals({ res.headers["x-f"], res.headers["x-i"] }, { "1.5", "2.0" })   -- as tostring
    res = assert(http.get(s.url .. "/odd/metatables"))
    lu.assertEquals({ res.status, res.body, res.headers["x-pairs"] }, { 202, "meta", "yes" })
    lu.assertEquals(res.headers["x-list"], "v1, v2")   -- two lines, joined by the client
    res = assert(http.get(s.url .. "/odd/huge"))
    lu.assertEquals(#res.body, 5000000)
    lu.assertEquals(res.body:sub(-10), "0123456789")
    -- the handler's framing headers are dropped; a 204 carries no body: the
    -- next request on the same connection is read right
    local c = assert(socket.connect("127.0.0.1", s.port))
    c:settimeout(5)
    c:send("GET /odd/framing HTTP/1.1\r\nHost: x\r\n\r\nGET /odd/no-content HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    local status, headers, body = read_response(c)
    lu.assertEquals(status, 200)
    lu.assertEquals(headers["content-length"], { "6" })
    lu.assertNil(headers["transfer-encoding"])
    lu.assertNil(headers.connection)
    lu.assertEquals(#headers.date, 1)
    lu.assertEquals(body, "framed")
    status, headers, body = read_response(c)
    lu.assertEquals(status, 204)
    lu.assertNil(headers["content-length"])
    lu.assertEquals(body, "")
    status, _, body = read_response(c)
    lu.assertEquals({ status, body }, { 200, "hello world" })
    c:close()
  end

  function T.test_access_log_has_no_query_string()
    assert(http.get(s.url .. "/hello?code=ac_secret_code&state=xyz"))
    local log = server.poll(function()
      local t = s:log_text()
      return t:find('path="/hello" status=200', 1, true) and t
    end, 5)
    lu.assertNotNil(log)
    lu.assertNil(log:find("ac_secret_code", 1, true))
    lu.assertStrMatches(log, '.*method=GET path="/hello" status=200 ms=[%d.]+ bytes=%d+.*')
    -- bytes counts the body sent: none for HEAD or 204 (it counted the handler's body)
    assert(http.request{ method = "HEAD", url = s.url .. "/hello?name=head" })
    assert(http.get(s.url .. "/odd/no-content"))
    log = server.poll(function()
      local t = s:log_text()
      return t:find('path="/odd/no-content" status=204', 1, true) and t
    end, 5)
    lu.assertStrContains(log, 'method=HEAD path="/hello" status=200 ms=')
    lu.assertStrMatches(log, '.*method=HEAD path="/hello" status=200 ms=[%d.]+ bytes=0\n.*')
    lu.assertStrMatches(log, '.*path="/odd/no%-content" status=204 ms=[%d.]+ bytes=0\n.*')
    lu.assertStrMatches(log, '.*method=GET path="/hello" status=200 ms=[%d.]+ bytes=11\n.*')
  end

  return T
end

local TestServeCli = {}

function TestServeCli.test_help()
  local out, rc = run(BIN .. " serve --help")
  lu.assertEquals(rc, "0")
  lu.assertStrContains(out, "usage: stripe-connect serve APP.lua")
end

function TestServeCli.test_bad_options_exit_2()
  for _, args in ipairs{ "", APP .. " --bogus", APP .. " --workers 0", APP .. " --listen nope",
                         APP .. " --workers",
                         -- bug: fractions were truncated (1.5 workers ran 1, port 80.5 was 80)
                         APP .. " --workers 1.5", APP .. " --listen 127.0.0.1:80.5",
                         APP .. " --max-connections 2.5", APP .. " --read-timeout nan" } do
    local out, rc = run(BIN .. " serve " .. args)
    lu.assertEquals(rc, "2", args)
    lu.assertStrContains(out, "usage:", args)
  end
end

function TestServeCli.test_app_load_error_exit_1()
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("error('broken app')\n")
  f:close()
  local out, rc = run(BIN .. " serve " .. path .. " --listen 127.0.0.1:0")
  lu.assertEquals(rc, "1")
  lu.assertStrMatches(out, "^stripe%-connect: .*broken app.*")
  f = assert(io.open(path, "w"))
  f:write("return 42\n")
  f:close()
  out, rc = run(BIN .. " serve " .. path .. " --listen 127.0.0.1:0")
  os.remove(path)
  lu.assertEquals(rc, "1")
  lu.assertStrContains(out, "must return a handler function or a routes table")
end

return { TestServeBasicOneWorker = suite(1), TestServeBasicFourWorkers = suite(4),
         TestServeCli = TestServeCli }
