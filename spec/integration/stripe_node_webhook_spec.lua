-- Interop with the official Stripe Node library (stripe-node, installed with
-- `npm install --prefix build/node stripe` when build/node/node_modules/stripe
-- is missing): its generateTestHeaderString headers verify with ours, and
-- what we sign (webhook.sign, webhook.event, scripts/send_webhook.lua) passes
-- its constructEvent.  Skipped, with a message, only when npm is absent.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local webhook = require "stripe_connect.webhook"
local stripe_node = require "support.stripe_node"

local SCRIPT = "spec/support/stripe_node_webhook.js"
local fx = require "support.webhook_fixtures"

local SECRET, OTHER, FIXTURE, V3 = fx.SECRET, fx.OTHER, fx.FIXTURE, fx.V3_PAYLOAD
local UNICODE = '{"id":"evt_u","object":"event","type":"x","data":{"object":{"name":"Zo\u{eb} \u{2603} /\\n"}}}'

local q, sh = stripe_node.q, stripe_node.sh

local function need_node()
  local ok, why = stripe_node.ensure()
  lu.skipIf(not ok, why)
end

-- node(cases) -> results: one run of the batch mode.
local function node(cases)
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write(assert(cjson.encode(cases)))
  f:close()
  local out, code = sh("node " .. SCRIPT .. " batch " .. q(file))
  os.remove(file)
  assert(code == 0, "node batch failed:\n" .. out)
  return assert(cjson.decode(out), out)
end

local TestStripeNodeWebhook = {}

function TestStripeNodeWebhook.test_node_headers_verify_with_ours()
  need_node()
  local now = os.time()
  -- { name, generate case, our secrets, our opts, expected (true or a reason code) }
  local rows = {
    { "V3 fixed timestamp", { payload = V3, secret = SECRET, timestamp = 1700000000 }, SECRET,
      { now = 1700000000 }, true },
    { "fixture, node's clock", { payload = FIXTURE, secret = SECRET }, SECRET, nil, true },
    { "unicode payload", { payload = UNICODE, secret = SECRET, timestamp = now }, SECRET, nil, true },
    { "other of two configured secrets", { payload = FIXTURE, secret = OTHER, timestamp = now },
      { SECRET, OTHER }, nil, true },
    { "v0 scheme", { payload = FIXTURE, secret = SECRET, timestamp = now, scheme = "v0" }, SECRET, nil, "no_v1" },
    { "wrong secret", { payload = FIXTURE, secret = "whsec_wrong", timestamp = now }, SECRET, nil, "no_match" },
    { "400 s old", { payload = FIXTURE, secret = SECRET, timestamp = now - 400 }, SECRET, nil, "too_old" },
    { "an hour ahead", { payload = FIXTURE, secret = SECRET, timestamp = now + 3600 }, SECRET, nil, "in_future" },
  }
  local cases = {}
  for i, r in ipairs(rows) do r[2].op = "generate"; cases[i] = r[2] end
  local results = node(cases)
  lu.assertEquals(results[1].header, "t=1700000000,v1=0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd")
  for i, r in ipairs(rows) do
    local ok, _, code = webhook.verify(r[2].payload, results[i].header, r[3], r[4])
    lu.assertEquals(ok or code, r[5], r[1])
  end
end

function TestStripeNodeWebhook.test_our_signatures_pass_construct_event()
  need_node()
  local now = os.time()
  local deauth = webhook.event { type = webhook.DEAUTHORIZED, account = "acct_1Fg9jUA3kq9o1aTc" }
  -- { name, payload, our header, node's secret, expected: event id or error message fragment }
  local rows = {
    { "fixture", FIXTURE, webhook.sign(FIXTURE, SECRET), SECRET, "evt_1Iu8ZfA3kq9o1aTcf3b7EknK" },
    { "built event", deauth, webhook.sign(deauth, SECRET), SECRET, cjson.decode(deauth).id },
    { "unicode payload", UNICODE, webhook.sign(UNICODE, SECRET), SECRET, "evt_u" },
    { "rotation, old secret", FIXTURE, webhook.sign(FIXTURE, { SECRET, OTHER }), SECRET,
      "evt_1Iu8ZfA3kq9o1aTcf3b7EknK" },
    { "rotation, new secret", FIXTURE, webhook.sign(FIXTURE, { SECRET, OTHER }), OTHER,
      "evt_1Iu8ZfA3kq9o1aTcf3b7EknK" },
    { "wrong secret", FIXTURE, webhook.sign(FIXTURE, "whsec_wrong"), SECRET, "No signatures found matching" },
    { "v0 only", FIXTURE, webhook.sign(FIXTURE, SECRET, { scheme = "v0" }), SECRET,
      "No signatures found with expected scheme" },
    { "400 s old", FIXTURE, webhook.sign(FIXTURE, SECRET, { timestamp = now - 400 }), SECRET,
      "Timestamp outside the tolerance zone" },
  }
  local cases = {}
  for i, r in ipairs(rows) do
    cases[i] = { op = "construct", payload = r[2], header = r[3], secret = r[4] }
  end
  -- The same header, byte for byte, from both libraries.
  cases[#cases + 1] = { op = "generate", payload = FIXTURE, secret = SECRET, timestamp = 1621742759 }
  local results = node(cases)
  for i, r in ipairs(rows) do
    local res = results[i]
    if r[5]:match("^evt_") then
      lu.assertEquals({ res.ok, res.id }, { true, r[5] }, r[1] .. ": " .. tostring(res.message))
    else
      lu.assertFalse(res.ok, r[1])
      lu.assertEquals(res.error_type, "StripeSignatureVerificationError", r[1])
      lu.assertStrContains(res.message, r[5], false, r[1])
    end
  end
  lu.assertEquals(results[#results].header, webhook.sign(FIXTURE, SECRET, { timestamp = 1621742759 }))
  lu.assertEquals(results[2].account, "acct_1Fg9jUA3kq9o1aTc")
end

-- scripts/send_webhook.lua posting to a node server that runs constructEvent.
function TestStripeNodeWebhook.test_send_webhook_passes_construct_event()
  need_node()
  local p = assert(io.popen("node " .. SCRIPT .. " serve " .. q(SECRET), "r"))
  local port = p:read("*l")
  local ok, err = pcall(function()
    assert(port and port:match("^%d+$"), "node server did not start: " .. tostring(port))
    local url = "http://127.0.0.1:" .. port .. "/webhooks"
    local send = "build/stripe-connect run scripts/send_webhook.lua --url " .. url
    local event_file = os.tmpname()
    local f = assert(io.open(event_file, "wb"))
    f:write(FIXTURE)
    f:close()
    -- { name, arguments, exit code, body fragment }
    local rows = {
      { "built deauthorization", " --secret " .. SECRET .. " --type account.application.deauthorized" ..
        " --account acct_1Fg9jUA3kq9o1aTc", 0, '"account":"acct_1Fg9jUA3kq9o1aTc"' },
      { "file", " --secret " .. SECRET .. " --file " .. q(event_file), 0, '"id":"evt_1Iu8ZfA3kq9o1aTcf3b7EknK"' },
      { "two secrets", " --secret whsec_new," .. SECRET .. " --type charge.succeeded", 0, '"type":"charge.succeeded"' },
      { "env secrets", " --type account.updated", 0, '"type":"account.updated"', "STRIPE_WEBHOOK_SECRETS=" .. SECRET },
      { "wrong secret", " --secret whsec_wrong --file " .. q(event_file), 1, "No signatures found matching" },
      { "old timestamp", " --secret " .. SECRET .. " --file " .. q(event_file) .. " --timestamp " ..
        (os.time() - 400), 1, "Timestamp outside the tolerance zone" },
    }
    for _, r in ipairs(rows) do
      local out, code = sh((r[5] and "env " .. r[5] .. " " or "env -u STRIPE_WEBHOOK_SECRETS ") .. send .. r[2])
      lu.assertEquals(code, r[3], r[1] .. ":\n" .. out)
      lu.assertStrContains(out, r[4], false, r[1])
      lu.assertNil(out:find(SECRET, 1, true), r[1] .. ": the secret was printed")
    end
    os.remove(event_file)
  end)
  if port and port:match("^%d+$") then
    require("stripe_connect.core").http_request { method = "POST", url = "http://127.0.0.1:" .. port .. "/quit",
                                                 timeout = 10 }
  end
  p:close()
  assert(ok, err)
end

return { TestStripeNodeWebhook = TestStripeNodeWebhook }
