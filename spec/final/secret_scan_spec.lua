-- The secret scan: run last by `make test` (label `secrets`), after every
-- other spec has run with STRIPE_CONNECT_TEST_LOGS set.  The servers' logs
-- kept there hold none of the secret keys, webhook secrets, state secrets or
-- admin tokens the specs configured, nor any code or token a fake Connect
-- issued (support.server, support.secret_scan).  The self-check plants
-- secrets in a log of a temp folder and must find them.
local lu = require "luaunit"
local files = require "support.files"
local server = require "support.server"
local scan = require "support.secret_scan"

local T = {}

function T.test_planted_secrets_are_found()
  local dir = files.tmpdir()
  local key, code = "sk_test_planted_for_the_self_check", "ac_0123456789abcdef0123456789abcdef"
  files.write(dir .. "/x.secrets", table.concat(server.secret_values{
    STRIPE_SECRET_KEY = key, STATE_SECRETS = "k1:planted-state-secret-value", ADMIN_TOKEN = "x" }, "\n"))
  files.write(dir .. "/x.issued", code .. "\n")
  files.write(dir .. "/clean.log", "GET /connect 302\nnothing to see\n")
  lu.assertEquals(#scan.run(dir).hits, 0)
  files.write(dir .. "/a.log", "error: bad key " .. key .. " and planted-state-secret-value\n")
  files.write(dir .. "/b.out", "GET /oauth/callback?code=" .. code .. "&state=s\n")
  local r = scan.run(dir)
  files.rmdir(dir)
  lu.assertEquals(r.logs, 3)
  local found = {}
  for _, h in ipairs(r.hits) do
    found[h.file:match("[^/]+$") .. " " .. h.kind] = (found[h.file:match("[^/]+$") .. " " .. h.kind] or 0) + 1
    lu.assertNotStrContains(scan.report(r), key) -- the report masks what it found
  end
  lu.assertEquals(found, { ["a.log configured"] = 2, ["b.out issued"] = 1 })
end

function T.test_the_spec_runs_logs_hold_no_secret()
  local dir = server.log_dir or "build/test-logs"
  local r = scan.run(dir)
  -- Not vacuous: the run kept the logs of many servers and the fakes issued codes.
  lu.assertTrue(r.logs >= 20, ("only %d logs under %s (run under make test)"):format(r.logs, dir))
  lu.assertTrue(r.issued >= 20, ("only %d issued codes and tokens recorded"):format(r.issued))
  io.stderr:write(("secret scan: %d logs (%d bytes) searched for %d configured secrets and %d issued codes and tokens")
    :format(r.logs, r.bytes, r.secrets, r.issued), "\n")
  lu.assertEquals(#r.hits, 0, "secrets in the logs:\n" .. scan.report(r))
end

return { TestSecretScan = T }
