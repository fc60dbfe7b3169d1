-- The README's worked policy example ("Policy and storage hooks") as the
-- platform's POLICY, through the whole flow against the fake Connect: the
-- owner, scope and prefill hooks shape the authorize link, on_connected
-- writes the platform's own table, and the fake's Disconnect (a signed
-- webhook) makes on_deauthorized delete the row.
local lu = require "luaunit"
local http = require "support.http"
local files = require "support.files"
local platform = require "support.platform"
local readme = require "support.readme"
local core = require "stripe_connect.core"

local TestReadmePolicyFlow = {}

local function rows(db_path)
  local db = assert(core.sqlite_open(db_path))
  local r = assert(db:exec{ { "SELECT user_id, account_id, scope FROM user_stripe ORDER BY account_id" } })
  db:close()
  return r[1]
end

function TestReadmePolicyFlow.test_the_example_through_the_flow()
  local dir = files.tmpdir()
  files.write(dir .. "/policy.lua", readme.policy_example())
  local db_path = dir .. "/app.db"
  local p = platform.start{ env = { POLICY = dir .. "/policy.lua", APP_DATABASE = db_path } }
  local ok, err = pcall(function()
    local b = http.browser()
    b.cookies.user = "u42"                       -- the platform's own session, in the example
    local auth = p:begin(b, "/connect?email=jenny%40example.com&access=read")
    lu.assertEquals(auth.args.scope, "read_only")
    lu.assertEquals(auth.args["stripe_user[email]"], "jenny@example.com")
    lu.assertEquals(auth.args["stripe_user[country]"], "US")
    local res = assert(b:get(p:decide(auth, "approve")))
    lu.assertEquals(res.status, 303)
    local account = res.headers["location"]:match("account=(acct_%w+)")
    lu.assertNotNil(account, res.headers["location"])
    local got = rows(db_path)
    lu.assertEquals(#got, 1)
    lu.assertEquals({ got[1].user_id, got[1].account_id, got[1].scope }, { "u42", account, "read_only" })

    -- the user disconnects in their dashboard: the signed webhook runs on_deauthorized
    local d = assert(http.post_form(p.fake.url .. "/__fake/accounts/" .. account .. "/disconnect", {}))
    lu.assertEquals(d.status, 200, d.body)
    lu.assertStrContains(d.body, '"status":200')
    lu.assertEquals(#rows(db_path), 0)
  end)
  p:stop()
  files.rmdir(dir)
  if not ok then error(err, 0) end
end

return { TestReadmePolicyFlow = TestReadmePolicyFlow }
