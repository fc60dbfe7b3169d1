-- At most once: the OAuth code exchange must never reach Stripe twice (a
-- second use of a code revokes the connection).  libcurl resends a request on
-- a new connection when a reused keep-alive connection closes before any
-- byte of the answer, even when the server had read and acted on it; named
-- after that bug, this spec drives an upstream that does exactly that.
local lu = require "luaunit"
local cjson = require "cjson"
local core = require "stripe_connect.core"
local oauth = require "stripe_connect.oauth"
local server = require "support.server"
local files = require "support.files"

local port, pid, logfile

local function paths_seen(path)
  local n = 0
  for line in (files.read(logfile) or ""):gmatch("[^\n]+") do
    if line == path then n = n + 1 end
  end
  return n
end

local TestHttpOnce = {}

function TestHttpOnce.setUp()
  logfile = os.tmpname()
  pid, port = server.run_listener("spec/support/dying_upstream.lua", logfile)
end

function TestHttpOnce.tearDown()
  os.execute("kill " .. pid .. " 2>/dev/null")
  os.remove(logfile)
end

local function base() return "http://127.0.0.1:" .. port end

-- Warm a kept-alive connection in this process's client.
local function warm()
  local res = assert(core.http_request{ url = base() .. "/ok" })
  lu.assertEquals(res.status, 200)
end

function TestHttpOnce.test_reused_connection_resends_without_fresh_connect()
  -- What the option guards against (libcurl 7.88, Debian 12's).
  warm()
  local res, _, code = core.http_request{ method = "POST", url = base() .. "/spend", body = "x=1" }
  lu.assertNil(res)
  lu.assertNotNil(code)
  lu.assertEquals(paths_seen("/spend"), 2)
end

function TestHttpOnce.test_fresh_connect_sends_once()
  warm()
  local res, _, code = core.http_request{ method = "POST", url = base() .. "/spend", body = "x=1",
                                          fresh_connect = true }
  lu.assertNil(res)
  lu.assertEquals(code, "reset")
  lu.assertEquals(paths_seen("/spend"), 1)
end

function TestHttpOnce.test_code_exchange_reaches_stripe_once()
  warm()
  local res, err = oauth.token{ secret_key = "sk_test_once", code = "ac_once", connect_base = base() }
  lu.assertNil(res)
  lu.assertEquals(err.type, "transport")
  lu.assertEquals(err.attempts, 1)
  lu.assertEquals(paths_seen("/oauth/token"), 1)
end

-- The same inside a `serve` handler, where the call yields and curl's multi
-- handle keeps the connection cache (the front app's /call runs
-- core.http_request with the options it is given).
function TestHttpOnce.test_under_serve_fresh_connect_sends_once()
  local front = server.start{ app = "spec/support/apps/serve_basic.lua", args = { "--workers", "1" } }
  local function call(opts)
    local res = assert(core.http_request{ method = "POST", url = front.url .. "/call",
      headers = { ["Content-Type"] = "application/json" }, body = cjson.encode{ opts = opts } })
    lu.assertEquals(res.status, 200, res.body)
    return cjson.decode(res.body)[1]
  end
  local ok, err = pcall(function()
    lu.assertEquals(call{ url = base() .. "/ok" }.res.status, 200)
    local once = call{ method = "POST", url = base() .. "/spend", body = "x=1", fresh_connect = true }
    lu.assertEquals(once.code, "reset")
    lu.assertEquals(paths_seen("/spend"), 1)
    lu.assertEquals(call{ url = base() .. "/ok" }.res.status, 200)
    local twice = call{ method = "POST", url = base() .. "/spend", body = "x=1" }
    lu.assertNotNil(twice.code)
    lu.assertEquals(paths_seen("/spend"), 3, "without fresh_connect the request was resent")
  end)
  front:stop()
  if not ok then error(err, 0) end
end

function TestHttpOnce.test_fresh_connect_must_be_a_boolean()
  lu.assertErrorMsgContains("option 'fresh_connect' must be a boolean",
    core.http_request, { url = base() .. "/ok", fresh_connect = "yes" })
end

return { TestHttpOnce = TestHttpOnce }
