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
--
-- TestWebhookServerLimits runs the handler alone behind `serve`
-- (spec/support/apps/webhook_handler_app.lua) with a server body limit above
-- the handler's, so each 413 is seen from the side that gives it; plus
-- headers with spaces, huge headers and the livemode check over HTTP.
-- TestSendWebhookScript: send_webhook.lua's usage errors and exit codes.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local webhook = require "stripe_connect.webhook"
local http = require "support.http"
local platform = require "support.platform"
local server = require "support.server"
local stripe_node = require "support.stripe_node"

-- "host", or "nginx" when spec/integration/openresty_spec.lua loads this file
-- with that argument: TestWebhookE2E against scripts/openresty/serve.
local target = ... or "host"

local q, sh = stripe_node.q, stripe_node.sh
local SECRET = platform.WEBHOOK_SECRET

local p, hook_log -- started once for the class

local function setup()
  if p then return p end
  hook_log = os.tmpname()
  p = platform.start {
    workers = 2, target = target,
    env = { POLICY = "spec/support/webhook_e2e_policy.lua", WEBHOOK_E2E_LOG = hook_log },
  }
  return p
end

local read_lines = require("support.files").lines

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
-- before processing, so exactly one copy runs the hook; each other copy is
-- a duplicate (it came after) or answered 409 processing (it came while
-- the first held its claim: Stripe would retry it).
function TestWebhookE2E.test_concurrent_deliveries_are_processed_once()
  local id = connected_account()
  local file = write_file((webhook.event { type = webhook.DEAUTHORIZED, account = id }))
  local one = send_command("--secret " .. q(SECRET) .. " --file " .. q(file))
  local out, code = sh("for i in 1 2 3 4 5 6 7 8; do " .. one .. " & done; wait")
  os.remove(file)
  lu.assertEquals(code, 0, out)
  local _, fresh = out:gsub('{"received":true}', "")
  local _, dups = out:gsub('"duplicate":true', "")
  local _, busy = out:gsub('{"error":"processing"}', "")
  lu.assertEquals({ fresh, dups + busy }, { 1, 7 }, out)
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

-- The fake's disconnect control with a timestamp: out of range is the
-- fake's 400 (it was a 500 after revoking the connection); a stale one is
-- delivered and refused by the platform (too_old), the account stays connected.
function TestWebhookE2E.test_fake_disconnect_timestamp()
  local id = connected_account()
  for _, ts in ipairs({ "-5", "1e20" }) do
    local res = http.post_form(p.fake.url .. "/__fake/accounts/" .. id .. "/disconnect", { timestamp = ts })
    lu.assertEquals(res.status, 400, ts .. ": " .. res.body)
    lu.assertStrContains(res.body, "timestamp must be", false, ts)
  end
  local res = http.post_form(p.fake.url .. "/__fake/accounts/" .. id .. "/disconnect",
    { timestamp = tostring(os.time() - 3600) })
  lu.assertEquals(res.status, 200, res.body)
  lu.assertEquals(cjson.decode(res.body).delivery.status, 400)
  lu.assertEquals(account(id).status, "connected")
end

-- doc/PROTOCOL.md §6: a production endpoint also receives test events.  The
-- platform runs with a sk_test_ key, so a live-mode event is acknowledged
-- and not applied, and /metrics counts it.
function TestWebhookE2E.test_event_of_the_other_mode_is_acknowledged_not_applied()
  local id = connected_account()
  local code, out = send("--secret " .. q(SECRET) .. " --livemode --type account.application.deauthorized --account " .. id)
  lu.assertEquals(code, 0, out)
  lu.assertStrContains(out, '"ignored":"livemode"')
  lu.assertEquals(account(id).status, "connected")
  lu.assertEquals(count(read_lines(hook_log), id .. " webhook"), 0)
  local metrics = http.get(p.url .. "/metrics")
  lu.assertEquals(metrics.status, 200)
  lu.assertStrMatches(metrics.body, '.*stripe_connect_webhooks_total{result="ignored_livemode"} [1-9]%d*\n.*')
  -- The same account's test-mode event is applied.
  code, out = send("--secret " .. q(SECRET) .. " --type account.application.deauthorized --account " .. id)
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

local TestWebhookServerLimits = {}

local limits -- the server, started once for the class
local HANDLER_MAX_BODY, SERVER_MAX_BODY = 4096, 8192

function TestWebhookServerLimits.setupClass()
  limits = server.start { app = "spec/support/apps/webhook_handler_app.lua",
    env = { WEBHOOK_SECRETS = SECRET, WEBHOOK_MAX_BODY = tostring(HANDLER_MAX_BODY), WEBHOOK_LIVEMODE = "false" },
    args = { "--workers", "1", "--max-body-size", tostring(SERVER_MAX_BODY), "--max-header-size", "16384" } }
end

function TestWebhookServerLimits.teardownClass()
  if limits then limits:stop() end
  limits = nil
end

-- An event of exactly n bytes (padded in data.object).
local function event_of_size(n, opts)
  opts = opts or {}
  local head = '{"id":"evt_size' .. n .. (opts.suffix or "") .. '","object":"event","type":"charge.succeeded",' ..
    '"livemode":' .. tostring(opts.livemode == true) .. ',"data":{"object":{"pad":"'
  local tail = '"}}}'
  return head .. ("x"):rep(n - #head - #tail) .. tail
end

local function post(body, header)
  return assert(http.request { method = "POST", url = limits.url .. "/webhooks", body = body,
    headers = { ["Content-Type"] = "application/json", ["Stripe-Signature"] = header } })
end

local function state()
  return cjson.decode(assert(http.get(limits.url .. "/state")).body)
end

function TestWebhookServerLimits.test_over_the_limits()
  local now = os.time()
  local function sig(body, t) return "v1=" .. core.hex_encode(core.hmac_sha256(SECRET, (t or now) .. "." .. body)) end
  local ok_body = event_of_size(HANDLER_MAX_BODY)
  local pad_v0 = function(n) return ",v0=" .. ("a"):rep(n) end
  -- { name, body, header, status, body (nil: not checked) }
  local rows = {
    { "body at the handler's limit", ok_body, webhook.sign(ok_body, SECRET), 200, '{"received":true}' },
    { "body over the handler's limit: the handler's 413", event_of_size(HANDLER_MAX_BODY + 1),
      webhook.sign(event_of_size(HANDLER_MAX_BODY + 1), SECRET), 413, '{"error":"too_large"}' },
    { "body over the server's limit: the server's 413", event_of_size(SERVER_MAX_BODY + 1),
      webhook.sign(event_of_size(SERVER_MAX_BODY + 1), SECRET), 413 },
    { "header with spaces after the commas", event_of_size(300, { suffix = "sp" }),
      "t=" .. now .. ", " .. sig(event_of_size(300, { suffix = "sp" })) .. ",  v0=00", 200, '{"received":true}' },
    { "header over 8 KiB (under the server's 16 KiB): malformed_header", event_of_size(300, { suffix = "big" }),
      "t=" .. now .. "," .. sig(event_of_size(300, { suffix = "big" })) .. pad_v0(10000), 400,
      '{"error":"malformed_header"}' },
    { "header over the server's limit: 431", event_of_size(300, { suffix = "huge" }),
      "t=" .. now .. "," .. sig(event_of_size(300, { suffix = "huge" })) .. pad_v0(20000), 431 },
    { "301 s old", event_of_size(300, { suffix = "old" }),
      "t=" .. (now - 301) .. "," .. sig(event_of_size(300, { suffix = "old" }), now - 301), 400, '{"error":"too_old"}' },
    -- signed just before it is sent (a function): a slow run must not let "now + 301" age
    -- into the tolerance before the server reads it
    { "301 s ahead", event_of_size(300, { suffix = "ahead" }), function()
        local t = os.time() + 301
        return "t=" .. t .. "," .. sig(event_of_size(300, { suffix = "ahead" }), t)
      end, 400,
      '{"error":"in_future"}' },
    { "live event on a test platform", event_of_size(300, { suffix = "live", livemode = true }),
      webhook.sign(event_of_size(300, { suffix = "live", livemode = true }), SECRET), 200,
      '{"ignored":"livemode","received":true}' },
  }
  local before = state().counters
  for _, r in ipairs(rows) do
    local header = type(r[3]) == "function" and r[3]() or r[3]
    local res = post(r[2], header)
    lu.assertEquals(res.status, r[4], r[1] .. ": " .. tostring(res.body))
    if r[5] then
      local got = cjson.decode(res.body)
      lu.assertEquals(got, cjson.decode(r[5]), r[1])
    end
  end
  -- The server's own refusals never reached the handler.
  local after = state().counters
  local function added(series)
    series = "stripe_connect_webhooks_total{" .. series .. "}"
    return (after[series] or 0) - (before[series] or 0)
  end
  lu.assertEquals(added('result="rejected",reason="too_large"'), 1)
  lu.assertEquals(added('result="rejected",reason="malformed_header"'), 1)
  lu.assertEquals(added('result="processed"'), 2)
  lu.assertEquals(added('result="ignored_livemode"'), 1)
end

-- Over a raw socket (LuaSocket), what a client library cannot send: a
-- repeated Stripe-Signature (the server joins repeats with ", ", so two
-- timestamps: malformed_header), a NUL in the header (the server's 400),
-- optional whitespace around the value, a lower-case name.
function TestWebhookServerLimits.test_raw_headers()
  local socket = require "socket"
  -- { name, body, header lines (without the final CRLF), status, body (nil: not checked) }
  local function rows()
    local out = {}
    local function row(name, suffix, lines_of, status, want)
      local body = event_of_size(200, { suffix = suffix })
      out[#out + 1] = { name, body, lines_of(webhook.sign(body, SECRET)), status, want }
    end
    row("repeated header", "rep", function(h) return "Stripe-Signature: " .. h .. "\r\nStripe-Signature: " .. h end,
      400, '{"error":"malformed_header"}')
    row("NUL in the header", "nul", function(h) return "Stripe-Signature: " .. h .. "\0" end, 400)
    row("whitespace around the value", "ows", function(h) return "Stripe-Signature:   " .. h .. "   " end,
      200, '{"received":true}')
    row("lower-case name, spaces after commas", "lc", function(h) return "stripe-signature: " .. h:gsub(",", ", ") end,
      200, '{"received":true}')
    return out
  end
  for _, r in ipairs(rows()) do
    local c = assert(socket.connect("127.0.0.1", limits.port))
    c:settimeout(5)
    assert(c:send("POST /webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " ..
      #r[2] .. "\r\n" .. r[3] .. "\r\nConnection: close\r\n\r\n" .. r[2]))
    local answer = c:receive("*a") or ""
    c:close()
    lu.assertEquals(tonumber(answer:match("^HTTP/1%.1 (%d%d%d)")), r[4], r[1] .. ":\n" .. answer)
    if r[5] then lu.assertEquals(answer:match("\r\n\r\n(.*)$"), r[5], r[1]) end
  end
end

local TestSendWebhookScript = {}

local SCRIPT_SECRET = "whsec_send_webhook_script_spec"

function TestSendWebhookScript.test_usage_errors_and_exit_codes()
  local closed = server.start { app = "spec/support/apps/webhook_handler_app.lua",
    env = { WEBHOOK_SECRETS = SCRIPT_SECRET }, args = { "--workers", "1" } }
  local live_url = closed.url .. "/webhooks"
  local ok, err = pcall(function()
    local url = " --url " .. q(live_url)
    local s = " --secret " .. SCRIPT_SECRET
    local missing = os.tmpname()
    os.remove(missing)
    -- { name, arguments, exit code, output fragment }
    local rows = {
      { "no arguments", "", 2, "--url is required" },
      { "unknown argument", url .. s .. " --type x --bogus", 2, "unknown argument: --bogus" },
      { "option without its value", " --url", 2, "--url needs a value" },
      { "url given twice", url .. url .. s .. " --type x", 2, "--url given twice" },
      { "url not http", " --url ftp://127.0.0.1/x" .. s .. " --type x", 2, "--url must be http" },
      { "no secret", url .. " --type x", 2, "no secret" },
      { "empty secret list", url .. " --secret , --type x", 2, "no secret" },
      { "neither --type nor --file", url .. s, 2, "exactly one of --type and --file" },
      { "both --type and --file", url .. s .. " --type x --file /dev/null", 2, "exactly one of --type and --file" },
      { "--account with --file", url .. s .. " --file /dev/null --account acct_1", 2, "go with --type" },
      { "unreadable file", url .. s .. " --file " .. q(missing), 2, "cannot read --file" },
      { "timestamp not a number", url .. s .. " --type x --timestamp soon", 2, "--timestamp must be" },
      { "negative timestamp", url .. s .. " --type x --timestamp -5", 2, "--timestamp must be" },
      -- Bugs: these two used to end in a Lua traceback (exit 1).
      { "timestamp past 15 digits was a traceback", url .. s .. " --type x --timestamp 1e20", 2, "--timestamp must be" },
      { "timeout 0 was a traceback", url .. s .. " --type x --timeout 0", 2, "--timeout must be" },
      { "--help", " --help", 0, "usage: send_webhook.lua" },
      { "accepted: exit 0", url .. s .. " --type account.updated --account acct_1", 0, '200\n{"received":true}' },
      { "rejected: exit 1", url .. " --secret whsec_wrong --type account.updated", 1, '400\n{"error":"no_match"}' },
      { "server gone: exit 1", " --url http://127.0.0.1:" .. closed.port .. "/webhooks" .. s .. " --type x",
        1, "(connect)", "stop first" },
    }
    for _, r in ipairs(rows) do
      if r[5] == "stop first" then closed:stop() end
      local out, code = sh("env -u STRIPE_WEBHOOK_SECRETS build/stripe-connect run scripts/send_webhook.lua" .. r[2])
      lu.assertEquals(code, r[3], r[1] .. ":\n" .. out)
      lu.assertStrContains(out, r[4], false, r[1])
      lu.assertNil(out:find(SCRIPT_SECRET, 1, true), r[1] .. ": the secret was printed")
      lu.assertNil(out:find("whsec_wrong", 1, true), r[1] .. ": the secret was printed")
      lu.assertNil(out:find("stack traceback", 1, true), r[1] .. ": a traceback")
    end
  end)
  closed:stop()
  assert(ok, err)
end

if target == "nginx" then return { TestWebhookE2ENginx = TestWebhookE2E } end
return { TestWebhookE2E = TestWebhookE2E, TestWebhookServerLimits = TestWebhookServerLimits,
         TestSendWebhookScript = TestSendWebhookScript }
