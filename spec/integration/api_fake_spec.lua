-- stripe_connect.api over loopback against the fake Connect under `serve`:
-- calls with and without Stripe-Account, a POST retried after a 500 (the
-- work done, the answer lost), after a dropped connection and after a hang
-- is applied once (the fake's records show one object), 429 then success,
-- no retry on 400, pagination over three pages, 403 for a disconnected
-- account.  The unit rows (every status, backoff, headers) are in
-- spec/lua/api_spec.lua.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local api = require "stripe_connect.api"
local server = require "support.server"
local http = require "support.http"

local SK = "sk_test_api_fake_spec_key"
local CLIENT = "ca_api_fake_spec"

local fake

local TestApiFake = {}

function TestApiFake.setupClass()
  fake = server.start{ app = "scripts/fake_connect.lua", args = { "--workers", "1" },
                       env = { FAKE_CLIENT_ID = CLIENT, FAKE_SECRET_KEY = SK } }
end

function TestApiFake.teardownClass()
  if fake then fake:stop() end
end

local function client(opts)
  local o = { secret_key = SK, api_base = fake.url, initial_retry_delay = 0.01, max_retry_delay = 0.05, timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return api.new(o)
end

local function fake_post(path, fields)
  local res = assert(http.post_form(fake.url .. path, fields))
  lu.assertEquals(res.status, 200, path .. ": " .. res.body)
  return cjson.decode(res.body)
end

-- connect() -> a fresh account connected to the platform (OAuth code + token).
local function connect()
  local res = http.post_form(fake.url .. "/oauth/authorize/decide",
    { response_type = "code", client_id = CLIENT, scope = "read_write", decision = "approve" })
  local code = res.headers["location"]:match("code=([%w_]+)")
  local t = assert(http.post_form(fake.url .. "/oauth/token", { grant_type = "authorization_code", code = code },
    { Authorization = "Bearer " .. SK }))
  return cjson.decode(t.body).stripe_user_id
end

-- customers(acct) -> the ids of the customers the fake holds for acct.
local function customers(acct)
  local objects = cjson.decode(assert(http.get(fake.url .. "/__fake/objects")).body).data
  for _, o in ipairs(objects) do
    if o.account == acct then return o.customer_ids end
  end
  return {}
end

function TestApiFake.test_with_and_without_stripe_account()
  local acct = connect()
  local c = client()
  lu.assertEquals(assert(c:account()).id, "acct_platform_fake")
  local a = assert(c:account(acct))
  lu.assertEquals(a.id, acct)
  lu.assertEquals(a.object, "account")
  local cus = assert(c:post("/v1/customers", { email = "x@y.example", metadata = { n = 1 } }, { account = acct }))
  lu.assertEquals(customers(acct), { cus.id })
  lu.assertEquals(#customers("platform"), 0)
  -- the platform itself cannot see it; the account can
  local _, err = c:get("/v1/customers/" .. cus.id)
  lu.assertEquals(err.status, 404)
  lu.assertEquals(err.code, "resource_missing")
  lu.assertEquals(assert(c:get("/v1/customers/" .. cus.id, nil, { account = acct })).metadata.n, "1")
end

function TestApiFake.test_post_retried_after_a_500_is_applied_once()
  local acct = connect()
  fake_post("/__fake/fail", { path = "/v1/customers", status = "500", when = "after" })
  local c = assert(client():post("/v1/customers", { name = "after 500" }, { account = acct }))
  lu.assertEquals(customers(acct), { c.id })
  local log = cjson.decode(http.get(fake.url .. "/__fake/api_requests").body).data
  local last, before = log[#log], log[#log - 1]
  lu.assertEquals(before.status, 500)
  lu.assertTrue(last.replayed)
  lu.assertEquals(last.idempotency_key, before.idempotency_key)
end

function TestApiFake.test_post_retried_after_a_dropped_connection_is_applied_once()
  local acct = connect()
  local _, port = server.run_listener("spec/support/dropping_proxy.lua", fake.url, "1")
  local c = assert(client{ api_base = "http://127.0.0.1:" .. port }):post("/v1/customers", { name = "dropped" },
    { account = acct })
  lu.assertNotNil(c, "the retry answered")
  lu.assertEquals(customers(acct), { c.id }, "one customer")
  local log = cjson.decode(http.get(fake.url .. "/__fake/api_requests").body).data
  lu.assertTrue(log[#log].replayed, "the second try was answered from the first")
  lu.assertEquals(log[#log].idempotency_key, log[#log - 1].idempotency_key)
end

function TestApiFake.test_post_retried_after_a_hang_is_applied_once()
  local acct = connect()
  fake_post("/__fake/fail", { path = "/v1/customers", delay = "3", when = "after" })
  local c = assert(client{ timeout = 1 }:post("/v1/customers", { name = "hung" }, { account = acct }))
  lu.assertEquals(customers(acct), { c.id })
  local log = cjson.decode(http.get(fake.url .. "/__fake/api_requests").body).data
  lu.assertTrue(log[#log].replayed)
end

function TestApiFake.test_429_then_success_and_no_retry_on_400()
  local acct = connect()
  fake_post("/__fake/fail", { path = "/v1/customers", status = "429" })
  local c = assert(client():post("/v1/customers", { name = "after 429" }, { account = acct }))
  lu.assertEquals(customers(acct), { c.id })
  local before = #cjson.decode(http.get(fake.url .. "/__fake/api_requests").body).data
  local res, err = client():post("/v1/account_links", { account = acct }, {})
  lu.assertNil(res)
  lu.assertEquals(err.status, 400)
  lu.assertEquals(err.kind, "invalid_request")
  lu.assertEquals(err.attempts, 1)
  lu.assertEquals(#cjson.decode(http.get(fake.url .. "/__fake/api_requests").body).data, before + 1)
  -- Stripe-Should-Retry: false is obeyed on a 500
  fake_post("/__fake/fail", { path = "/v1/customers", status = "500", should_retry = "false" })
  _, err = client():post("/v1/customers", { name = "no" }, { account = acct })
  lu.assertEquals(err.status, 500)
  lu.assertEquals(err.attempts, 1)
end

function TestApiFake.test_pagination_over_three_pages()
  local acct = connect()
  local c = client()
  for i = 1, 8 do assert(c:post("/v1/customers", { name = "p" .. i }, { account = acct })) end
  local seen = {}
  for cus, err in c:list("/v1/customers", { limit = 3 }, { account = acct }) do
    lu.assertNil(err)
    seen[#seen + 1] = cus.name
  end
  lu.assertEquals(seen, { "p8", "p7", "p6", "p5", "p4", "p3", "p2", "p1" })
  local pages = 0
  for _, r in ipairs(cjson.decode(http.get(fake.url .. "/__fake/api_requests").body).data) do
    if r.method == "GET" and r.path == "/v1/customers" and r.account == acct then pages = pages + 1 end
  end
  lu.assertEquals(pages, 3)
end

function TestApiFake.test_a_disconnected_account_answers_403()
  local acct = connect()
  local gone = {}
  local c = client{ on_not_connected = function(id) gone[#gone + 1] = id end }
  assert(c:account(acct))
  fake_post("/__fake/accounts/" .. acct .. "/disconnect", {})
  local res, err = c:post("/v1/customers", { name = "late" }, { account = acct })
  lu.assertNil(res)
  lu.assertEquals(err.status, 403)
  lu.assertEquals(err.kind, "permission")
  lu.assertTrue(err.not_connected)
  lu.assertEquals(gone, { acct })
  lu.assertNotStrContains(tostring(err), SK)
end

-- script(args) -> exit code, output of scripts/api.lua with only the key and the API base.
local function script(args)
  local out = os.tmpname()
  local ok, _, code = os.execute("env -i PATH=\"$PATH\" STRIPE_SECRET_KEY=" .. SK .. " STRIPE_API_BASE=" .. fake.url ..
    " " .. server.bin .. " run scripts/api.lua " .. args .. " > " .. out .. " 2>&1")
  local f = io.open(out, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(out)
  return ok and 0 or code, text
end

function TestApiFake.test_script()
  local acct = connect()
  local code, out = script("POST /v1/customers email=s@x.example 'metadata[order]=42' --account " .. acct)
  lu.assertEquals(code, 0, out)
  local cus = cjson.decode(out)
  lu.assertEquals(cus.metadata.order, "42")
  lu.assertEquals(customers(acct), { cus.id })
  code, out = script("GET /v1/customers limit=1 --account=" .. acct)
  lu.assertEquals(code, 0, out)
  lu.assertEquals(cjson.decode(out).data[1].id, cus.id)
  code, out = script("GET /v1/account")
  lu.assertEquals(cjson.decode(out).id, "acct_platform_fake")
  fake_post("/__fake/accounts/" .. acct .. "/disconnect", {})
  code, out = script("GET /v1/account --account " .. acct)
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "HTTP 403")
  lu.assertNotStrContains(out, SK)
  for _, bad in ipairs{ "", "GET", "PATCH /v1/x", "GET v1/x", "GET /v1/account --account bob", "GET /v1/x nokey" } do
    code, out = script(bad)
    lu.assertEquals(code, 2, bad .. ": " .. out)
    lu.assertStrContains(out, "usage:", false, bad)
  end
end

return { TestApiFake = TestApiFake }
