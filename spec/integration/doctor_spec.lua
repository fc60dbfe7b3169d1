-- scripts/doctor.lua (issue 14, item 1): every trap set up in the
-- environment is found with its fix; make run's configuration is clean;
-- exit 0 clean, 1 with findings, 2 usage; --json; --offline skips the clock.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local doctor = require "stripe_connect.doctor"
local files = require "support.files"
local server = require "support.server"

local TestDoctor = {}
local dir, fake

function TestDoctor.setupClass()
  dir = files.tmpdir()
  -- Stripe's stand-in, for the one network call (its Date header)
  fake = server.start{ app = "scripts/fake_connect.lua", args = { "--workers", "1" } }
end

function TestDoctor.teardownClass()
  if fake then fake:stop() end
  if dir then files.rmdir(dir) end
end

-- make run's configuration (scripts/dev.lua without real Stripe settings).
local function dev_env()
  return {
    PUBLIC_URL = "http://127.0.0.1:8080", STATE_SECRETS = "k1:" .. ("Zm9vYmFy"):rep(6),
    ADMIN_TOKEN = "Yv9k2QpL7xR4mT8wZc1N6bH3sJ0dF5gA", DATABASE = "sqlite:" .. dir .. "/connect.db",
    STRIPE_SECRET_KEY = "sk_test_fake_development_key", STRIPE_CLIENT_ID = "ca_fake_development_client",
    STRIPE_CONNECT_BASE = fake.url, STRIPE_API_BASE = fake.url,
    STRIPE_WEBHOOK_SECRETS = "whsec_fake_development_secret",
  }
end

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- run(over, args) -> exit code, stdout: the doctor with dev_env() and `over`
-- (false removes a setting), in an environment of nothing else.
local function run(over, args)
  local env = dev_env()
  for k, v in pairs(over or {}) do if v == false then env[k] = nil else env[k] = v end end
  local parts = { "env -i PATH=" .. sh(os.getenv("PATH")) }
  for k, v in pairs(env) do parts[#parts + 1] = sh(k .. "=" .. v) end
  local out = os.tmpname()
  local ok, _, code = os.execute(table.concat(parts, " ") .. " build/stripe-connect run scripts/doctor.lua " ..
    (args or "") .. " > " .. out .. " 2>&1")
  local text = files.read(out) or ""
  os.remove(out)
  return ok and 0 or code, text
end

local function ids(text)
  local r = assert(cjson.decode(text), text)
  local set = {}
  for _, f in ipairs(r.findings) do set[f.id] = f end
  return set, r
end

function TestDoctor.test_make_runs_configuration_is_clean()
  local rc, out = run(nil, "")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "doctor: no findings (checked state_secrets, public_url, webhook_secrets, " ..
    "stripe_bases, ca_bundle, store, clock)")
  rc, out = run(nil, "--json")
  lu.assertEquals(rc, 0, out)
  local set, r = ids(out)
  lu.assertEquals(next(set), nil, out)
  lu.assertEquals(r.checked[#r.checked], "clock")
end

function TestDoctor.test_each_trap_is_found()
  local live = { STRIPE_SECRET_KEY = "sk_live_doctor_spec_key", PUBLIC_URL = "https://platform.example" }
  local function with(t, more) local o = {} for k, v in pairs(t) do o[k] = v end for k, v in pairs(more) do o[k] = v end return o end
  local readable = dir .. "/readable.db"
  files.write(readable, "")
  os.execute("chmod 644 " .. sh(readable))
  local rows = {
    { "state secrets missing", { STATE_SECRETS = false }, "state_secrets_missing", "give every worker and host the same" },
    { "state secrets short", { STATE_SECRETS = "k1:short" }, "state_secrets_short", "head -c 32 /dev/urandom" },
    { "PUBLIC_URL not absolute", { PUBLIC_URL = "platform.example" }, "public_url_not_absolute", "PUBLIC_URL=https://" },
    { "PUBLIC_URL http with a live key", with(live, { PUBLIC_URL = "http://platform.example" }), "public_url_not_https",
      "serve behind TLS" },
    { "redirect URI not absolute", { REDIRECT_URIS = "/oauth/callback" }, "redirect_uri_not_absolute", "absolute URLs" },
    { "redirect URI http with a live key", with(live, { REDIRECT_URIS = "http://platform.example/oauth/callback" }),
      "redirect_uri_not_https", "https redirect URIs" },
    { "webhook secrets missing", { STRIPE_WEBHOOK_SECRETS = false }, "webhook_secrets_missing", "STRIPE_WEBHOOK_SECRETS=whsec_" },
    { "connect base over http with a live key", live, "stripe_base_not_https", "(Stripe's https default)" },
    { "store folder missing", { DATABASE = "sqlite:/nonexistent/doctor/connect.db" }, "store_not_writable", "StateDirectory" },
    { "store readable by others", { DATABASE = "sqlite:" .. readable }, "store_readable_by_others", "chmod 600" },
  }
  for _, row in ipairs(rows) do
    local rc, out = run(row[2], "--json --offline")
    lu.assertEquals(rc, 1, row[1] .. ": " .. out)
    local f = ids(out)[row[3]]
    lu.assertNotNil(f, row[1] .. ": " .. out)
    lu.assertStrContains(f.fix, row[4], false, row[1])
    lu.assertNotNil(f.setting, row[1])
    lu.assertNotNil(f.problem, row[1])
    lu.assertNotStrContains(out, "sk_live_doctor_spec_key", false, row[1])
  end
  -- the CA bundle
  local rc, out = run(nil, "--json --offline --ca-file /nonexistent/ca.pem")
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(ids(out).ca_bundle_missing.fix, "apt-get install ca-certificates")
  -- text output names the finding and its fix
  rc, out = run({ STRIPE_WEBHOOK_SECRETS = false }, "--offline")
  lu.assertEquals(rc, 1)
  lu.assertStrContains(out, "doctor: 1 finding\n")
  lu.assertStrContains(out, "[webhook_secrets_missing] STRIPE_WEBHOOK_SECRETS: ")
  lu.assertStrContains(out, "  fix: add an endpoint for account.application.deauthorized")
end

function TestDoctor.test_the_clock_check_and_offline()
  local pid, port = server.run_listener("spec/support/raw_upstream.lua")
  local ok, err = pcall(function()
    local base = "http://127.0.0.1:" .. port .. "/skewed"
    local rc, out = run({ STRIPE_CONNECT_BASE = base }, "--json")
    lu.assertEquals(rc, 1, out)
    local f = ids(out).clock_skewed
    lu.assertNotNil(f, out)
    lu.assertStrMatches(f.problem, "this clock is 3%d%d%d s ahead of http://127%.0%.0%.1:%d+/skewed's")
    lu.assertStrContains(f.fix, "NTP")
    -- --offline: no network call, no clock finding
    rc, out = run({ STRIPE_CONNECT_BASE = base }, "--json --offline")
    lu.assertEquals(rc, 0, out)
  end)
  os.execute("kill " .. pid .. " 2>/dev/null")
  if not ok then error(err, 0) end
  local rc, out = run({ STRIPE_CONNECT_BASE = "http://127.0.0.1:9" }, "--json")
  lu.assertEquals(rc, 1, out)
  lu.assertNotNil(ids(out).connect_base_unreachable, out)
end

function TestDoctor.test_usage_and_dates()
  local rc, out = run(nil, "--bogus")
  lu.assertEquals(rc, 2)
  lu.assertStrContains(out, "doctor: unknown argument '--bogus'")
  rc, out = run(nil, "--help")
  lu.assertEquals(rc, 0)
  lu.assertStrContains(out, "usage: stripe-connect run scripts/doctor.lua [--json] [--offline]")
  local rows = {
    { "Thu, 01 Jan 1970 00:00:00 GMT", 0 }, { "Wed, 02 Dec 2026 12:29:38 GMT", 1796214578 },
    { "Tue, 29 Feb 2028 23:59:59 GMT", 1835481599 }, { "not a date", nil },
  }
  for _, row in ipairs(rows) do lu.assertEquals(doctor.http_date(row[1]), row[2], row[1]) end
end

return { TestDoctor = TestDoctor }
