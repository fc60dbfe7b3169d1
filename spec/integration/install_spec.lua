-- make install PREFIX=… DESTDIR=… and make uninstall: the installed binary
-- finds its modules and scripts from any directory with no environment
-- (`run accounts`, `serve platform` on port 0 answers /healthz 200), the man
-- page renders and is current (doc/stripe-connect.1 = settings.man()), the
-- systemd unit maps LoadCredential onto the *_FILE settings, uninstall
-- leaves no file; and luarocks lint is clean on the rockspec.
local lu = require "luaunit"
local files = require "support.files"
local server = require "support.server"
local http = require "support.http"
local settings = require "stripe_connect.settings"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local sh = files.capture

local TestInstall = {}

function TestInstall.test_man_page_is_current_and_lint_is_clean()
  lu.assertEquals(files.read("doc/stripe-connect.1"), settings.man(), "run make man")
  local code, out = sh("luarocks lint stripe-connect-scm-1.rockspec")
  lu.assertEquals(code, 0, out)
  local unit = assert(files.read("scripts/systemd/stripe-connect.service"))
  for _, line in ipairs({ "DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=stripe-connect",
      "LoadCredential=state_secrets:", "Environment=STATE_SECRETS_FILE=%d/state_secrets" }) do
    lu.assertStrContains(unit, line)
  end
  for _, s in ipairs(settings.PLATFORM) do
    if s.file then lu.assertStrContains(unit, "Environment=" .. s.name .. "_FILE=%d/") end
  end
end

function TestInstall.test_install_run_serve_man_uninstall()
  local dir = files.tmpdir()
  local destdir, prefix = dir .. "/dest", "/opt/sc"
  local root = destdir .. prefix
  local pid
  local ok, err = pcall(function()
    local code, out = sh("make -s --no-print-directory install DESTDIR=" .. q(destdir) .. " PREFIX=" .. prefix)
    lu.assertEquals(code, 0, out)
    for _, f in ipairs({ "/bin/stripe-connect", "/share/lua/5.4/stripe_connect/app.lua",
        "/share/lua/5.4/stripe_connect/store/sqlite.lua", "/share/lua/5.4/stripe_connect/fake/oauth.lua",
        "/lib/lua/5.4/stripe_connect/core.so",
        "/lib/lua/5.1/stripe_connect/core.so", "/share/stripe-connect/scripts/platform.lua",
        "/share/stripe-connect/scripts/openresty/serve", "/share/man/man1/stripe-connect.1",
        "/share/doc/stripe-connect/stripe-connect.service" }) do
      lu.assertNotNil(files.read(root .. f), f)
    end
    local bin = q(root .. "/bin/stripe-connect")
    -- from /, no environment: the modules come from the prefix, a bare name is an installed script
    files.write(dir .. "/probe.lua", 'io.write(package.searchpath("stripe_connect.oauth", package.path))')
    code, out = sh("cd / && env -i " .. bin .. " run " .. q(dir .. "/probe.lua"))
    lu.assertEquals(code, 0, out)
    lu.assertEquals(out, root .. "/bin/../share/lua/5.4/stripe_connect/oauth.lua")
    code, out = sh("cd / && env -i " .. bin .. " run accounts --help")
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "usage: stripe-connect run scripts/accounts.lua")
    -- serve platform on port 0
    os.execute("cd / && env -i STRIPE_SECRET_KEY=sk_test_install STRIPE_CLIENT_ID=ca_install " ..
      "PUBLIC_URL=http://127.0.0.1:1 DATABASE=memory: STATE_SECRETS=k1:" .. string.rep("s", 40) .. " " ..
      bin .. " serve platform --listen 127.0.0.1:0 --workers 1 > " .. q(dir .. "/serve.log") ..
      " 2>&1 & echo $! > " .. q(dir .. "/pid"))
    pid = server.poll(function() local s = files.read(dir .. "/pid"); return s and s:match("%d+") end, 5)
    local url = server.poll(function()
      local s = files.read(dir .. "/serve.log")
      return s and s:match("listening on (http://[%d.]+:%d+)")
    end, 20)
    lu.assertNotNil(url, files.read(dir .. "/serve.log"))
    lu.assertEquals(assert(http.get(url .. "/healthz")).status, 200)
    -- the man page renders with every setting
    code, out = sh("MANWIDTH=200 man -l " .. q(root .. "/share/man/man1/stripe-connect.1") .. " | col -b")
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "ENVIRONMENT")
    for _, s in ipairs(settings.PLATFORM) do lu.assertStrContains(out, s.name) end
    -- uninstall: no file left
    code, out = sh("make -s --no-print-directory uninstall DESTDIR=" .. q(destdir) .. " PREFIX=" .. prefix)
    lu.assertEquals(code, 0, out)
    code, out = sh("find " .. q(destdir) .. " -type f -o -type l")
    lu.assertEquals(out, "")
  end)
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  files.rmdir(dir)
  if not ok then error(err, 0) end
end

return { TestInstall = TestInstall }
