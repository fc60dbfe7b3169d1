-- The README's worked policy example ("Policy and storage hooks"), loaded from
-- the README itself and run through stripe_connect.policy, so the example
-- cannot rot: its hooks answer what the README says, and on_connected /
-- on_deauthorized write and delete rows of the platform's own table.
local lu = require "luaunit"
local files = require "support.files"
local readme = require "support.readme"
local policy_mod = require "stripe_connect.policy"
local core = require "stripe_connect.core"

local ALLOW = { "http://127.0.0.1:8080/oauth/callback" }

local function load_policy(db_path)
  local src = readme.policy_example()
  local old_getenv = os.getenv
  -- the example reads APP_DATABASE; point it at a temp file
  os.getenv = function(name) if name == "APP_DATABASE" then return db_path end return old_getenv(name) end
  local chunk = assert((loadstring or load)(src, "=README.md policy example"))
  local ok, hooks = pcall(chunk)
  lu.assertTrue(ok, tostring(hooks))
  return hooks, function() os.getenv = old_getenv end
end

local TestReadmePolicy = {}

function TestReadmePolicy.test_hooks_through_the_policy()
  local dir = files.tmpdir()
  local db_path = dir .. "/app.db"
  local hooks, restore = load_policy(db_path)
  local logs = {}
  local p = policy_mod.new(hooks, { redirect_uris = ALLOW, log = function(m) logs[#logs + 1] = m end })

  local req = { args = { email = "jenny@example.com", access = "read" }, cookies = { user = "u42" }, headers = {} }
  lu.assertEquals(p.owner(req), "u42")
  lu.assertEquals(p.scope(req), "read_only")
  lu.assertEquals(p.scope({ args = {}, cookies = {} }), "read_write")
  lu.assertEquals(p.prefill(req), { email = "jenny@example.com", country = "US" })
  lu.assertNil(p.owner({ args = {}, cookies = {} }))

  -- on_connected writes the platform's own row (in a database of its own)
  p.on_connected({ id = "acct_1", owner = "u42", scope = "read_only", livemode = false }, req)
  p.on_connected({ id = "acct_2", scope = "read_write", livemode = false }, req)
  lu.assertEquals(logs, {}, "the hooks raised: " .. table.concat(logs, "\n"))
  local db = assert(core.sqlite_open(db_path))
  local r = assert(db:exec{ { "SELECT user_id, account_id, scope FROM user_stripe ORDER BY account_id" } })
  lu.assertEquals(#r[1], 2)
  lu.assertEquals({ r[1][1].user_id, r[1][1].account_id, r[1][1].scope }, { "u42", "acct_1", "read_only" })
  lu.assertEquals(r[1][2].user_id, "anonymous")

  -- on_deauthorized deletes it, through the webhook's path too (which lets errors through)
  p.webhook.on_deauthorized("acct_1", "webhook")
  p.on_deauthorized("acct_2", "admin")
  lu.assertEquals(logs, {})
  r = assert(db:exec{ { "SELECT count(*) AS n FROM user_stripe" } })
  lu.assertEquals(r[1][1].n, 0)
  db:close()
  restore()
  files.rmdir(dir)
end

return { TestReadmePolicy = TestReadmePolicy }
