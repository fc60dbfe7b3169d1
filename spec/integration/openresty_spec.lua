-- The platform inside nginx (scripts/openresty/serve --workers 2: Debian's
-- nginx with lua-nginx-module, stripe_connect.ngx) against the fake Connect
-- from the host: the platform's end-to-end specs run a second time, unchanged,
-- against the nginx target (connect → approve → callback → account listed;
-- deny; tampered and other-browser state; replay; concurrent twin callbacks →
-- one token call, across two worker processes; admin with and without token;
-- webhook disconnect and duplicates), plus the launcher's own behaviour.
local lu = require "luaunit"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"
local files = require "support.files"

local suite = {}
for _, file in ipairs({ "spec/integration/platform_flow_spec.lua", "spec/integration/webhook_e2e_spec.lua" }) do
  for name, class in pairs(assert(loadfile(file))("nginx")) do suite[name] = class end
end

local TestOpenrestyServe = {}

local function run(cmd)
  local out = os.tmpname()
  local ok, _, code = os.execute(cmd .. " >" .. out .. " 2>&1")
  local text = files.read(out) or ""
  os.remove(out)
  return ok and 0 or code, text
end

-- A bad setting stops the launcher before nginx starts, with the host's message.
function TestOpenrestyServe.test_bad_setting_refused_with_the_host_message()
  local env = "env -i PATH=\"$PATH\" STRIPE_SECRET_KEY=sk_test_x STRIPE_CLIENT_ID=ca_x " ..
    "PUBLIC_URL=http://127.0.0.1:1 STATE_SECRETS=short DATABASE=memory: "
  local rc, text = run(env .. "scripts/openresty/serve --listen 127.0.0.1:0 --workers 1")
  local hrc, htext = run(env .. server.bin .. " serve scripts/platform.lua --listen 127.0.0.1:0")
  lu.assertEquals(rc, 2, text)
  lu.assertEquals(hrc, 2, htext)
  lu.assertStrContains(text, "stripe-connect: refusing to start; fix these settings:")
  lu.assertStrContains(text, "STATE_SECRETS")
  lu.assertEquals(text, htext)
  lu.assertNotStrContains(text, "listening on")
  rc, text = run("scripts/openresty/serve --workers zero")
  lu.assertEquals(rc, 2)
  lu.assertStrContains(text, "--workers must be a whole number")
end

-- Two worker processes, the metrics of both in /metrics; SIGTERM stops nginx
-- (no process left) and the launcher exits 0.
function TestOpenrestyServe.test_workers_metrics_and_stop()
  local p = platform.start{ workers = 2, target = "nginx", env = { DATABASE = "memory:" } }
  local ok, err = pcall(function()
    local n = 20
    for _ = 1, n do lu.assertEquals(assert(http.get(p.url .. "/connect")).status, 302) end
    local body = assert(http.get(p.url .. "/metrics")).body
    lu.assertStrContains(body, "stripe_connect_connect_total " .. n .. "\n")
    lu.assertStrContains(body, 'stripe_connect_request_duration_seconds_count{route="/connect"} ' .. n .. "\n")
    local res = assert(http.request{ method = "POST", url = p.url .. "/connect", body = "" })
    lu.assertEquals(res.status, 405)
    lu.assertEquals(res.headers["allow"], "GET")
    lu.assertEquals(assert(http.get(p.url .. "/nosuch")).status, 404)
    lu.assertEquals(assert(http.get(p.url .. "/connect?%zz")).status, 400)
  end)
  local _, master = run("pgrep -P " .. p.platform.pid .. " -x nginx")
  master = master:match("%d+")
  lu.assertNotNil(master)
  local rc = p.platform:stop()
  p.platform = nil
  p:stop()
  assert(ok, err)
  lu.assertEquals(rc, 0)
  lu.assertNotEquals(run("kill -0 " .. master), 0) -- nginx is gone
end

-- A launcher killed with SIGKILL does not leave nginx behind.
function TestOpenrestyServe.test_killed_launcher_takes_nginx_along()
  local p = platform.start{ workers = 1, target = "nginx", env = { DATABASE = "memory:" } }
  local _, master = run("pgrep -P " .. p.platform.pid .. " -x nginx")
  master = master:match("%d+")
  p.platform:kill()
  p.platform = nil
  p:stop()
  lu.assertNotNil(master)
  lu.assertTrue(server.poll(function() return run("kill -0 " .. master) ~= 0 end, 10) or false,
    "nginx " .. master .. " still runs after its launcher was killed")
end

-- stripe_connect.ngx_http (the cosocket client) inside nginx against a raw
-- upstream (spec/support/ngx_http_upstream.lua), through a test location
-- (spec/support/ngx_http.conf, started by the launcher's --conf).
local TestNgxHttp = {}
local ngx_server, up_pid, up_port

local tls_dir, tls_ok, tls_untrusted

-- Two TLS upstreams in the same nginx: one with a certificate the client
-- trusts (lua_ssl_trusted_certificate), one with another self-signed one.
local function tls_conf()
  tls_dir = files.tmpdir()
  for _, name in ipairs({ "trusted", "other" }) do
    local rc, out = run(string.format("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/%s.key -out %s/%s.crt " ..
      "-subj /CN=127.0.0.1 -addext subjectAltName=DNS:127.0.0.1,IP:127.0.0.1 -days 2", tls_dir, name, tls_dir, name))
    assert(rc == 0, out)
  end
  tls_ok, tls_untrusted = server.free_port(), server.free_port()
  local block = {}
  for port, name in pairs({ [tls_ok] = "trusted", [tls_untrusted] = "other" }) do
    block[#block + 1] = string.format("server { listen 127.0.0.1:%d ssl; ssl_certificate %s/%s.crt; " ..
      "ssl_certificate_key %s/%s.key; location / { return 200 \"tls $ssl_server_name\"; } }",
      port, tls_dir, name, tls_dir, name)
  end
  block[#block + 1] = "lua_ssl_trusted_certificate " .. tls_dir .. "/trusted.crt;"
  local text = assert(files.read("spec/support/ngx_http.conf")):gsub("# @TLS@", (table.concat(block, "\n    "):gsub("%%", "%%%%")))
  local path = tls_dir .. "/ngx_http.conf"
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

function TestNgxHttp.setupClass()
  up_pid, up_port = server.run_listener("spec/support/ngx_http_upstream.lua")
  ngx_server = server.start{ app = "scripts/platform.lua", launcher = "scripts/openresty/serve",
    args = { "--conf", tls_conf(), "--workers", "1" }, ready_timeout = 20,
    env = { STRIPE_SECRET_KEY = platform.SECRET_KEY, STRIPE_CLIENT_ID = platform.CLIENT_ID,
      PUBLIC_URL = "http://127.0.0.1:1", STATE_SECRETS = platform.STATE_SECRETS, DATABASE = "memory:" } }
end

function TestNgxHttp.teardownClass()
  if ngx_server then ngx_server:stop() end
  if tls_dir then files.rmdir(tls_dir) end
  if up_pid then os.execute("kill " .. up_pid .. " 2>/dev/null") end
end

-- call(path, query) -> the client's { res, message, code } for http://127.0.0.1:UP/path.
local function call(path, extra, port)
  local url = "http://127.0.0.1:" .. (port or up_port) .. path
  local res = assert(http.get(ngx_server.url .. "/t?url=" .. require("stripe_connect.core").url_encode(url) ..
    (extra or "")))
  lu.assertEquals(res.status, 200, res.body)
  return assert(require("cjson.safe").decode(res.body), res.body)
end

-- https: the certificate is verified (against the trusted file) and SNI is sent.
function TestNgxHttp.test_tls_verified_with_sni()
  local function tls(port)
    local res = assert(http.get(ngx_server.url .. "/t?url=" ..
      require("stripe_connect.core").url_encode("https://127.0.0.1:" .. port .. "/")))
    return assert(require("cjson.safe").decode(res.body), res.body)
  end
  local r = tls(tls_ok)
  lu.assertEquals(r.res and r.res.status, 200, r.message)
  lu.assertEquals(r.res.body, "tls 127.0.0.1") -- the name the client sent in SNI
  lu.assertEquals(tls(tls_ok).res.body, "tls 127.0.0.1") -- again, on the pooled TLS connection
  r = tls(tls_untrusted)
  lu.assertEquals(r.res, false)
  lu.assertEquals(r.code, "tls")
end

function TestNgxHttp.test_bodies()
  local r = call("/length")
  lu.assertEquals(r.res.status, 200)
  lu.assertEquals(r.res.body, "hello")
  lu.assertEquals(r.res.headers["content-type"], "text/plain")
  r = call("/chunked")
  lu.assertEquals(r.res.status, 201)
  lu.assertEquals(r.res.body, "hello")
  lu.assertEquals(r.res.headers["set-cookie"], { "a=1", "b=2" })
  r = call("/close")
  lu.assertEquals(r.res.body, "until the close")
end

function TestNgxHttp.test_failures_have_codes()
  lu.assertEquals(call("/big", "&max_size=1000").code, "too_large")
  lu.assertEquals(call("/big").res.body, ("x"):rep(5000))
  lu.assertEquals(call("/slow", "&timeout=0.5").code, "timeout")
  lu.assertEquals(call("/", "", server.free_port()).code, "connect")
  lu.assertEquals(call("/x").res.status, 200) -- and the next request is answered
end

function TestNgxHttp.test_keepalive_and_fresh_connections()
  local a = call("/count", "&method=POST&body=abc").res.body
  local conn, n = a:match("conn=(%d+) req=(%d+)")
  conn, n = tonumber(conn), tonumber(n)
  lu.assertStrContains(a, " method=POST body=abc host=127.0.0.1:" .. up_port)
  local b = call("/count").res.body
  lu.assertStrContains(b, "conn=" .. conn .. " req=" .. (n + 1) .. " method=GET") -- the pooled connection
  local c = call("/count", "&fresh=1").res.body
  lu.assertStrContains(c, "conn=" .. (conn + 1) .. " req=1") -- a connection of its own
  -- fresh_connect: an answer that never comes is a failure, never a resend
  local d = call("/drop", "&fresh=1")
  lu.assertEquals(d.res, false)
  lu.assertEquals(d.code, "reset")
  local e = call("/count", "&fresh=1").res.body
  lu.assertStrContains(e, "conn=" .. (conn + 3) .. " req=1") -- the drop took one connection, no second try
end

suite.TestNgxHttp = TestNgxHttp
suite.TestOpenrestyServe = TestOpenrestyServe
return suite
