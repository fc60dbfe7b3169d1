-- The official Stripe Node library (npm `stripe`, installed with `npm install
-- --prefix build/node stripe@22` when missing; support.stripe_node pins the
-- major) against the fake Connect: configured with host/port/protocol
-- 'http', its oauth.token resolves with stripe_user_id, a reused code rejects
-- with StripeInvalidGrantError, and oauth.deauthorize resolves with
-- stripe_user_id (spec/support/stripe_node_oauth.js runs the calls).
-- Skipped, with a message, only when node or npm is absent.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local core = require "stripe_connect.core"
local server = require "support.server"
local http = require "support.http"
local stripe_node = require "support.stripe_node"

local SCRIPT = "spec/support/stripe_node_oauth.js"
local CLIENT = "ca_stripe_node_spec"
local SK = "sk_test_stripe_node_spec"

local fake

local function new_code()
  local res = http.post_form(fake.url .. "/oauth/authorize/decide",
    { response_type = "code", client_id = CLIENT, scope = "read_write", decision = "approve" })
  lu.assertEquals(res.status, 302, res.body)
  return assert(core.parse_query(res.headers["location"]:match("%?(.*)$"))).code
end

-- node(steps) -> results of spec/support/stripe_node_oauth.js
local function node(steps)
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write(assert(cjson.encode{ port = fake.port, secret_key = SK, client_id = CLIENT, steps = steps }))
  f:close()
  local out, code = stripe_node.sh("node " .. SCRIPT .. " " .. stripe_node.q(file))
  os.remove(file)
  assert(code == 0, "node " .. SCRIPT .. " failed:\n" .. out)
  return assert(cjson.decode(out), out)
end

local TestStripeNodeOAuth = {}

function TestStripeNodeOAuth.setupClass()
  if not stripe_node.ensure() then return end
  fake = server.start{ app = "scripts/fake_connect.lua", args = { "--workers", "1" },
                       env = { FAKE_CLIENT_ID = CLIENT, FAKE_SECRET_KEY = SK } }
end

function TestStripeNodeOAuth.teardownClass()
  if fake then fake:stop() end
end

function TestStripeNodeOAuth.test_token_reuse_and_deauthorize()
  local ok, msg = stripe_node.ensure()
  lu.skipIf(not ok, msg)
  local code, other = new_code(), new_code()
  local before = #cjson.decode(http.get(fake.url .. "/__fake/requests").body).data
  local r = node{
    { op = "token", code = code },
    { op = "token", code = code },
    { op = "token", code = other },
    { op = "deauthorize", stripe_user_id = "acct_notconnected" },
  }
  lu.assertTrue(r[1].ok, cjson.encode(r[1]))
  lu.assertStrMatches(r[1].result.stripe_user_id, "acct_%w+")
  lu.assertEquals(r[1].result.token_type, "bearer")
  lu.assertEquals(r[1].result.scope, "read_write")
  lu.assertEquals(r[1].result.livemode, false)

  lu.assertFalse(r[2].ok)
  lu.assertEquals(r[2].class, "StripeInvalidGrantError")
  lu.assertEquals(r[2].type, "StripeInvalidGrantError")
  lu.assertEquals(r[2].status, 400)
  lu.assertEquals(r[2].message,
    "This authorization code has already been used. All tokens issued with this code have been revoked.")

  lu.assertTrue(r[3].ok, cjson.encode(r[3]))
  lu.assertFalse(r[4].ok)
  lu.assertEquals(r[4].class, "StripeInvalidClientError")

  local acct = r[3].result.stripe_user_id
  r = node{ { op = "deauthorize", stripe_user_id = acct }, { op = "deauthorize", stripe_user_id = acct } }
  lu.assertTrue(r[1].ok, cjson.encode(r[1]))
  lu.assertEquals(r[1].result.stripe_user_id, acct)
  lu.assertFalse(r[2].ok)
  lu.assertEquals(r[2].class, "StripeInvalidClientError")
  lu.assertEquals(r[2].status, 401)

  -- what the library sent: Bearer auth (the fake's log shows the method), one request per call
  local log = cjson.decode(http.get(fake.url .. "/__fake/requests").body).data
  lu.assertEquals(#log, before + 6)
  lu.assertEquals(log[before + 1].auth, "bearer")
  lu.assertEquals(log[before + 1].grant_type, "authorization_code")
  lu.assertEquals(log[before + 1].code, code)
  lu.assertEquals(log[before + 5].path, "/oauth/deauthorize")
end

function TestStripeNodeOAuth.test_refresh_and_unknown_code()
  local ok, msg = stripe_node.ensure()
  lu.skipIf(not ok, msg)
  local r = node{ { op = "token", code = new_code() }, { op = "token", code = "ac_123456789" } }
  lu.assertTrue(r[1].ok, cjson.encode(r[1]))
  lu.assertEquals(r[2].class, "StripeInvalidGrantError")
  lu.assertEquals(r[2].message, "Authorization code does not exist: ac_123456789")
  local rt = r[1].result.refresh_token
  r = node{ { op = "refresh", refresh_token = rt, scope = "read_only" },
            { op = "refresh", refresh_token = rt, scope = "admin" } }
  lu.assertTrue(r[1].ok, cjson.encode(r[1]))
  lu.assertEquals(r[1].result.scope, "read_only")
  lu.assertEquals(r[2].class, "StripeInvalidScopeError")
end

-- stripe-node creates a customer on a connected account (stripeAccount)
-- through the fake; our stripe_connect.api reads it back as that account.
function TestStripeNodeOAuth.test_customer_on_a_connected_account()
  local ok, msg = stripe_node.ensure()
  lu.skipIf(not ok, msg)
  local r = node{ { op = "token", code = new_code() } }
  local acct = r[1].result.stripe_user_id
  local file = os.tmpname()
  local f = assert(io.open(file, "wb"))
  f:write(assert(cjson.encode{ port = fake.port, secret_key = SK, account = acct, email = "node@x.example" }))
  f:close()
  local out, code = stripe_node.sh("node spec/support/stripe_node_api.js " .. stripe_node.q(file))
  os.remove(file)
  lu.assertEquals(code, 0, out)
  local res = assert(cjson.decode(out), out)
  lu.assertTrue(res.ok, out)
  lu.assertEquals(res.replayed.id, res.customer.id, "the idempotency key answered the same customer")
  local api = require "stripe_connect.api"
  local client = api.new{ secret_key = SK, api_base = fake.url }
  local back = assert(client:get("/v1/customers/" .. res.customer.id, nil, { account = acct }))
  lu.assertEquals(back.email, "node@x.example")
  lu.assertEquals(back.metadata.from, "stripe-node")
  local all = assert(client:list_all("/v1/customers", nil, { account = acct }))
  lu.assertEquals(#all, 1)
  -- and not on the platform
  local _, err = client:get("/v1/customers/" .. res.customer.id)
  lu.assertEquals(err.status, 404)
end

return { TestStripeNodeOAuth = TestStripeNodeOAuth }
