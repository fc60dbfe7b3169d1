-- Issue 13, finding 10: body limits per route.  A GET route takes no body
-- (0); the platform's form routes take 4 KiB (app.FORM_MAX_BODY), /webhooks
-- the webhook handler's limit (1 MiB).  A Content-Length over the route's
-- limit answers 413 at the header block, before any of the body is read; a
-- chunked body as soon as a chunk would pass it.  Routes declare max_body;
-- undeclared, GET/HEAD routes take 0 and the others --max-body-size.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local platform = require "support.platform"
local server = require "support.server"
local raw = require "support.raw_http"
local app = require "stripe_connect.app"
local webhook = require "stripe_connect.webhook"

local TestFixRouteBodyLimits = {}
local p

function TestFixRouteBodyLimits.setupClass()
  p = platform.start{}
end

function TestFixRouteBodyLimits.teardownClass()
  if p then p:stop() end
end

local function refused_early(head, what)
  -- Only the header block is sent: the 413 cannot have waited for the body.
  local status, headers, _, c = raw.exchange(p.port, head)
  lu.assertEquals(status, 413, what)
  lu.assertEquals(headers.connection, "close", what)
  lu.assertTrue(raw.closed(c), what .. ": connection left open")
  c:close()
end

function TestFixRouteBodyLimits.test_a_get_route_takes_no_body()
  refused_early("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n", "GET /healthz with a body")
  refused_early("GET /connect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", "GET /connect with a body")
  refused_early("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n", "chunked GET")
  refused_early("POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "no route")
  refused_early("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "a GET route, POSTed")
  -- no body, or an empty one: served
  local status, _, _, c = raw.exchange(p.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
  lu.assertEquals(status, 200)
  c:close()
  status, _, _, c = raw.exchange(p.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
  lu.assertEquals(status, 200)
  c:close()
end

function TestFixRouteBodyLimits.test_form_routes_take_4_kib()
  lu.assertEquals(app.FORM_MAX_BODY, 4096)
  refused_early("POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    .. "Content-Length: 4097\r\n\r\n", "admin sign-in past 4 KiB")
  -- at the limit: the form is read (a wrong token: 401, not 413)
  local body = "token=wrong&pad=" .. ("x"):rep(4096 - #"token=wrong&pad=")
  local status, _, _, c = raw.exchange(p.port, "POST /admin/login HTTP/1.1\r\nHost: x\r\n"
    .. "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\n" .. body)
  lu.assertEquals(status, 401)
  c:close()
end

-- An event of exactly n bytes, signed now.
local function signed_event(n)
  local head = '{"id":"evt_limit' .. n .. '","object":"event","type":"charge.succeeded","livemode":false,'
    .. '"data":{"object":{"pad":"'
  local tail = '"}}}'
  local body = head .. ("x"):rep(n - #head - #tail) .. tail
  local t = os.time()
  return body, "t=" .. t .. ",v1=" .. core.hex_encode(core.hmac_sha256(platform.WEBHOOK_SECRET, t .. "." .. body))
end

function TestFixRouteBodyLimits.test_a_webhook_at_the_limit_works_past_it_413()
  local limit = webhook.DEFAULT_MAX_BODY
  local body, sig = signed_event(limit)
  lu.assertEquals(#body, limit)
  local c = raw.connect(p.port)
  c:settimeout(30)
  c:send("POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nStripe-Signature: " .. sig
    .. "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
  local status, _, rbody = raw.read_response(c)
  lu.assertEquals(status, 200, rbody)
  c:close()
  refused_early("POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nStripe-Signature: " .. sig
    .. "\r\nContent-Length: " .. (limit + 1) .. "\r\n\r\n", "a webhook one byte past the limit")
  -- chunked: refused at the chunk that passes the limit
  c = raw.connect(p.port)
  c:send("POST /webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. string.format("%x", limit) .. "\r\n" .. ("x"):rep(limit) .. "\r\n1\r\n")
  lu.assertEquals((raw.read_response(c)), 413)
  c:close()
end

-- An app's own routes: max_body declared per route, checked at load.
function TestFixRouteBodyLimits.test_declared_limits_in_an_app()
  local dir = require("support.files").tmpdir()
  local path = dir .. "/app.lua"
  require("support.files").write(path, [[
    local function echo(req) return { body = tostring(#(req.body or "")) } end
    return {
      { "GET", "/get", echo },
      { "POST", "/small", echo, max_body = 10 },
      { "PUT", "/default", echo },
      { "GET", "/get-with-body", echo, max_body = 5 },
    }
  ]])
  local s = server.start{ app = path, args = { "--workers", "1", "--max-body-size", "100" } }
  local ok, err = pcall(function()
    local function try(method, target, n)
      local status, _, body, c = raw.exchange(s.port, method .. " " .. target .. " HTTP/1.1\r\nHost: x\r\n"
        .. "Content-Length: " .. n .. "\r\n\r\n" .. ("b"):rep(n))
      c:close()
      return status, body
    end
    lu.assertEquals({ try("POST", "/small", 10) }, { 200, "10" })
    lu.assertEquals((try("POST", "/small", 11)), 413)
    lu.assertEquals({ try("PUT", "/default", 100) }, { 200, "100" })     -- --max-body-size
    lu.assertEquals((try("PUT", "/default", 101)), 413)
    lu.assertEquals((try("GET", "/get", 1)), 413)
    lu.assertEquals({ try("GET", "/get-with-body", 5) }, { 200, "5" })
  end)
  s:stop()
  -- a bad max_body stops the start with a message naming the route
  require("support.files").write(path, 'return { { "POST", "/x", function() end, max_body = "big" } }')
  local out = io.popen(server.bin .. " serve " .. path .. " --listen 127.0.0.1:0 2>&1"):read("a")
  require("support.files").rmdir(dir)
  if not ok then error(err, 0) end
  lu.assertStrContains(out, "route 1: max_body must be a whole number of bytes")
end

return { TestFixRouteBodyLimits = TestFixRouteBodyLimits }
