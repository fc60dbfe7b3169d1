-- Webhooks end to end: the platform (scripts/platform.lua, SQLite, two
-- workers, STRIPE_WEBHOOK_SECRETS set) against the fake Connect.  A user
-- connects through the platform, disconnects on the fake, the fake's signed
-- account.application.deauthorized event reaches POST /webhooks, and
-- /admin/accounts shows the account disconnected.  The same event delivered
-- twice (scripts/send_webhook.lua --file) is processed once; a bad
-- signature answers 400 with its reason; a huge body answers 413.
--
-- Processing is counted by a POLICY (spec/support/webhook_e2e_policy.lua)
-- whose on_deauthorized appends a line to a file: the workers share it.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local webhook = require "stripe_connect.webhook"
local http = require "support.http"
local platform = require "support.platform"
local stripe_node = require "support.stripe_node"

local q, sh = stripe_node.q, stripe_node.sh
local SECRET = platform.WEBHOOK_SECRET

local p, hook_log -- started once for the class

local function setup()
  if p then return p end
  hook_log = os.tmpname()
  p = platform.start {
    workers = 2,
    env = { POLICY = "spec/support/webhook_e2e_policy.lua", WEBHOOK_E2E_LOG = hook_log },
  }
  return p
end

local function read_lines(path)
  local lines = {}
  local f = io.open(path, "rb")
  if not f then return lines end
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

local function count(lines, want)
  local n = 0
  for _, l in ipairs(lines) do if l == want then n = n + 1 end end
  return n
end

-- account(id) -> the platform's admin view of one account (or nil).
local function account(id)
  local status, body = p:admin("GET", "/admin/accounts")
  assert(status == 200, "GET /admin/accounts answered " .. tostring(status))
  for _, a in ipairs(body.data) do
    if a.id == id then return a end
  end
  return nil
end

-- connected_account() -> the id of a new account connected through the platform.
local function connected_account()
  setup()
  local id = "acct_e2e" .. core.hex_encode(core.random_bytes(6))
  local res = p:connect(http.browser(), { account = id })
  assert(res.status == 303, "callback answered " .. tostring(res.status) .. ": " .. tostring(res.body))
  local a = account(id)
  assert(a and a.status == "connected", id .. " is not connected")
  return id
end

local function write_file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- The shell command running scripts/send_webhook.lua against /webhooks.
local function send_command(args)
  return "env -u STRIPE_WEBHOOK_SECRETS build/stripe-connect run scripts/send_webhook.lua --url " ..
    q(p.url .. "/webhooks") .. " " .. args
end

-- send(args) -> exit code, output.
local function send(args)
  local out, code = sh(send_command(args))
  return code, out
end

local TestWebhookE2E = {}

function TestWebhookE2E.teardownClass()
  if p then p:stop() end
  if hook_log then os.remove(hook_log) end
  p, hook_log = nil, nil
end

function TestWebhookE2E.test_disconnect_on_the_fake_marks_the_account_disconnected()
  local id = connected_account()
  local res = http.post_form(p.fake.url .. "/__fake/accounts/" .. id .. "/disconnect", {})
  lu.assertEquals(res.status, 200, res.body)
  local answer = cjson.decode(res.body)
  -- The fake delivers synchronously: the platform has answered by now.
  lu.assertEquals(answer.delivery.status, 200, res.body)
  lu.assertEquals(answer.event.account, id)
  local a = account(id)
  lu.assertEquals(a.status, "disconnected")
  lu.assertEquals(a.disconnect_reason, "webhook")
  lu.assertNil(a.access_token)
  lu.assertNil(a.refresh_token)
  lu.assertEquals(count(read_lines(hook_log), id .. " webhook"), 1)

  -- Stripe's retry of that event (same id, new signature): processed once.
  local again = write_file(webhook.event { type = webhook.DEAUTHORIZED, account = id, id = answer.event.id })
  local code, out = send("--secret " .. q(SECRET) .. " --file " .. q(again))
  os.remove(again)
  lu.assertEquals(code, 0, out)
  lu.assertStrContains(out, '"duplicate":true')
  lu.assertEquals(count(read_lines(hook_log), id .. " webhook"), 1)
end

function TestWebhookE2E.test_same_event_twice_is_processed_once()
  local id = connected_account()
  local file = write_file((webhook.event { type = webhook.DEAUTHORIZED, account = id }))
  local results = {}
  -- Several deliveries of the same bytes; two workers share the SQLite store.
  for i = 1, 4 do
    local code, out = send("--secret " .. q(SECRET) .. " --file " .. q(file))
    lu.assertEquals(code, 0, out)
    results[i] = out
  end
  os.remove(file)
  lu.assertStrContains(results[1], '{"received":true}')
  for i = 2, 4 do lu.assertStrContains(results[i], '"duplicate":true') end
  lu.assertEquals(count(read_lines(hook_log), id .. " webhook"), 1)
  lu.assertEquals(account(id).status, "disconnected")
end

-- Eight copies at once (two workers, one SQLite store): the id is claimed
-- before processing, so exactly one copy runs the hook.
function TestWebhookE2E.test_concurrent_deliveries_are_processed_once()
  local id = connected_account()
  local file = write_file((webhook.event { type = webhook.DEAUTHORIZED, account = id }))
  local one = send_command("--secret " .. q(SECRET) .. " --file " .. q(file))
  local out, code = sh("for i in 1 2 3 4 5 6 7 8; do " .. one .. " & done; wait")
  os.remove(file)
  lu.assertEquals(code, 0, out)
  local _, fresh = out:gsub('{"received":true}', "")
  local _, dups = out:gsub('"duplicate":true', "")
  lu.assertEquals({ fresh, dups }, { 1, 7 }, out)
  lu.assertEquals(count(read_lines(hook_log), id .. " webhook"), 1)
  lu.assertEquals(account(id).status, "disconnected")
end

function TestWebhookE2E.test_rotation_either_secret_is_accepted()
  local id = connected_account()
  -- The platform knows one secret; Stripe signs with the old and the new one.
  local code, out = send("--secret whsec_next_rotation," .. q(SECRET) ..
    " --type account.application.deauthorized --account " .. id)
  lu.assertEquals(code, 0, out)
  lu.assertEquals(account(id).status, "disconnected")
end

function TestWebhookE2E.test_rejections()
  local id = connected_account()
  local deauth = write_file((webhook.event { type = webhook.DEAUTHORIZED, account = id }))
  local huge = write_file('{"id":"evt_huge","type":"x","pad":"' .. ("x"):rep(1024 * 1024) .. '"}')
  local not_json = write_file("this is not json")
  -- { name, send_webhook arguments, status, body }
  local rows = {
    { "wrong secret", "--secret whsec_wrong --file " .. q(deauth), 400, '{"error":"no_match"}' },
    { "too old", "--secret " .. q(SECRET) .. " --file " .. q(deauth) .. " --timestamp " .. (os.time() - 3600),
      400, '{"error":"too_old"}' },
    { "in the future", "--secret " .. q(SECRET) .. " --file " .. q(deauth) .. " --timestamp " ..
      (os.time() + 3600), 400, '{"error":"in_future"}' },
    { "signed, not JSON", "--secret " .. q(SECRET) .. " --file " .. q(not_json), 400, '{"error":"invalid_event"}' },
    { "huge body", "--secret " .. q(SECRET) .. " --file " .. q(huge), 413, "" },
  }
  for _, r in ipairs(rows) do
    local code, out = send(r[2])
    lu.assertEquals(code, 1, r[1] .. ": " .. out)
    lu.assertStrContains(out, tostring(r[3]) .. "\n" .. r[4], false, r[1])
    lu.assertNil(out:find(SECRET, 1, true), r[1])
  end
  -- No Stripe-Signature at all.
  local res = http.request { method = "POST", url = p.url .. "/webhooks", body = "{}",
                             headers = { ["Content-Type"] = "application/json" } }
  lu.assertEquals(res.status, 400)
  lu.assertEquals(res.body, '{"error":"no_header"}')
  -- Nothing was processed, and the real event still goes through afterwards.
  lu.assertEquals(account(id).status, "connected")
  lu.assertEquals(count(read_lines(hook_log), id .. " webhook"), 0)
  local code, out = send("--secret " .. q(SECRET) .. " --file " .. q(deauth))
  lu.assertEquals(code, 0, out)
  lu.assertEquals(account(id).status, "disconnected")
  for _, f in ipairs({ deauth, huge, not_json }) do os.remove(f) end
end

return { TestWebhookE2E = TestWebhookE2E }
