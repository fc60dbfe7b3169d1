-- `make run` (scripts/dev.lua): starts the fake Connect and the platform
-- against each other, prints the URL; Connect → Approve lands on the success
-- page; Ctrl-C (SIGINT to the process group) stops both.  Also: a POLICY
-- file customises the authorize link.
local lu = require "luaunit"
local http = require "support.http"
local server = require "support.server"
local files = require "support.files"
local platform = require "support.platform"

local TestPlatformDev = {}

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

function TestPlatformDev.test_make_run_flow_and_ctrl_c()
  local dir = files.tmpdir()
  local port, fake_port = server.free_port(), server.free_port()
  -- setsid: the dev script leads its own process group, as in a terminal.
  os.execute(string.format("env -u STRIPE_SECRET_KEY -u STRIPE_CLIENT_ID -u DATABASE PORT=%d FAKE_PORT=%d DATA_DIR=%s " ..
    "setsid build/stripe-connect run scripts/dev.lua > %s/out 2>&1 < /dev/null & echo $! > %s/pid",
    port, fake_port, dir, dir, dir))
  local pid = assert(server.poll(function() local s = files.read(dir .. "/pid"); return s and s:match("%d+") end, 5))
  local ok, err = pcall(function()
    local out = server.poll(function()
      local s = files.read(dir .. "/out")
      return s and s:find("open http://127.0.0.1:" .. port .. "/", 1, true) and s
    end, 20)
    lu.assertNotNil(out, "dev.lua printed the URL: " .. tostring(files.read(dir .. "/out")))
    lu.assertStrContains(out, "fake Connect")
    -- secrets generated once, 0600
    local mode = io.popen("stat -c %a " .. dir .. "/state_secrets"):read("l")
    lu.assertEquals(mode, "600")
    -- Connect → Approve → success page
    local url = "http://127.0.0.1:" .. port
    local b = http.browser()
    local res = assert(b:get(url .. "/connect"))
    lu.assertEquals(res.status, 302)
    local loc = res.headers["location"]
    lu.assertStrContains(loc, "http://127.0.0.1:" .. fake_port .. "/oauth/authorize?")
    lu.assertEquals(assert(http.get(loc)).status, 200)
    local fields = platform.parse_query(loc)
    fields.decision = "approve"
    local decided = assert(http.post_form("http://127.0.0.1:" .. fake_port .. "/oauth/authorize/decide", fields))
    lu.assertEquals(decided.status, 302)
    local cb = assert(b:get(decided.headers["location"]))
    lu.assertEquals(cb.status, 303)
    local page = assert(b:get(url .. cb.headers["location"]))
    lu.assertEquals(page.status, 200)
    lu.assertStrContains(page.body, "You're connected")
    -- what it serves, where the data lives, how to point it at Stripe (all printed by now)
    out = assert(files.read(dir .. "/out"))
    lu.assertStrContains(out, "fake Connect:  http://127.0.0.1:" .. fake_port .. "/")
    lu.assertStrContains(out, "admin:         http://127.0.0.1:" .. port .. "/admin  (sign in with the token in " ..
      dir .. "/admin_token)")
    lu.assertStrContains(out, "data:          " .. dir .. "/  (sqlite:" .. dir .. "/connect.db")
    lu.assertStrContains(out, "real Stripe:   STRIPE_SECRET_KEY=sk_test_… STRIPE_CLIENT_ID=ca_… make run")
    lu.assertStrContains(out, "Ctrl-C stops everything")
    -- run.env: 0600, secret files by path only; the scripts reuse it (make accounts)
    lu.assertEquals(io.popen("stat -c %a " .. dir .. "/run.env"):read("l"), "600")
    local run_env = assert(files.read(dir .. "/run.env"))
    lu.assertStrContains(run_env, "STATE_SECRETS_FILE='" .. dir .. "/state_secrets'")
    lu.assertNotStrContains(run_env, (assert(files.read(dir .. "/state_secrets")):match("k1:(%S+)")))
    local p = io.popen("env -i PATH=\"$PATH\" make -s --no-print-directory accounts DATA_DIR=" .. dir .. " 2>&1")
    local listed = p:read("a")
    p:close()
    lu.assertStrMatches(listed, "ACCOUNT.*\nacct_%w+ +connected .*")
  end)
  -- Ctrl-C: SIGINT to the whole foreground group
  os.execute("kill -INT -" .. pid .. " 2>/dev/null")
  local stopped = server.poll(function() return not alive(pid) end, 20)
  local port_free = server.poll(function()
    return http.get("http://127.0.0.1:" .. port .. "/healthz") == nil
  end, 10)
  if not stopped then os.execute("kill -KILL -" .. pid .. " 2>/dev/null") end
  local out = files.read(dir .. "/out") or ""
  server.keep_log("make-run", out, { STATE_SECRETS_FILE = dir .. "/state_secrets",
    ADMIN_TOKEN_FILE = dir .. "/admin_token" })
  files.rmdir(dir)
  if not ok then error(err, 0) end
  lu.assertTrue(stopped, "dev.lua exited on SIGINT")
  lu.assertTrue(port_free, "the platform stopped")
  -- Ctrl-C is a normal stop, not "a server exited" (the servers see SIGINT too)
  lu.assertStrMatches(out, ".*make run: stopp[a-z]+\n$")
  lu.assertNotStrContains(out, "a server exited")
end

function TestPlatformDev.test_policy_file()
  local p = platform.start{ env = { POLICY = "scripts/example_policy.lua" } }
  local ok, err = pcall(function()
    local auth = p:begin(http.browser(), "/connect?email=someone%40example.com")
    lu.assertEquals(auth.args["stripe_user[email]"], "someone@example.com")
    lu.assertEquals(auth.args["stripe_user[country]"], "US")
    -- example_policy's return_to: /connected unless asked otherwise
    local b = http.browser()
    local res = p:connect(b)
    lu.assertEquals(res.headers["location"], "/connected")
  end)
  p:stop()
  if not ok then error(err, 0) end
end

return { TestPlatformDev = TestPlatformDev }
