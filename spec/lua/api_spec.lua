-- stripe_connect.api against the fake Connect in-process (its handler is the
-- transport): headers, form encoding, Stripe-Account, typed errors, the
-- retry rules and backoff of stripe-node, idempotency keys across retries,
-- pagination, the not-connected hook, and no secret in any error.
-- Over the wire (serve, dropped connections, stripe-node): spec/integration/api_fake_spec.lua.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local api = require "stripe_connect.api"
local fake = require "stripe_connect.fake"

local SK = "sk_test_api_spec_key_0123456789"
local CLIENT = "ca_api_spec"

-- A fake, a transport into its handler that records every request, and a
-- client on it whose sleeps are recorded instead of slept.
local function setup(client_opts)
  local env = { sent = {}, sleeps = {}, script = {} }
  env.fake = fake.new{ client_id = CLIENT, secret_key = SK, redirect_uris = { "https://p.example/cb" },
    sleep = function() end }
  local h = env.fake:handler()
  env.transport = function(r)
    env.sent[#env.sent + 1] = r
    local scripted = table.remove(env.script, 1)
    if scripted then
      if scripted.code then return nil, scripted.message or scripted.code, scripted.code end
      if scripted.run_then then
        h(env.to_req(r)) -- the request reaches the fake, the answer is lost
        return nil, "Recv failure: Connection reset by peer", scripted.run_then
      end
      return scripted
    end
    local res = h(env.to_req(r))
    local headers = {}
    for k, v in pairs(res.headers or {}) do headers[k:lower()] = v end
    return { status = res.status, headers = headers, body = res.body }
  end
  env.to_req = function(r)
    local path, query = r.url:match("^https?://[^/]+(/[^?]*)%??(.*)$")
    local headers = { host = "fake.example" }
    for k, v in pairs(r.headers or {}) do headers[k:lower()] = v end
    return { method = r.method, path = path, query = query, args = core.parse_query(query), headers = headers,
             body = r.body or "" }
  end
  local o = { secret_key = SK, api_base = "https://fake.example", transport = env.transport,
    sleep = function(s) env.sleeps[#env.sleeps + 1] = s end, random = function() return 0.5 end }
  for k, v in pairs(client_opts or {}) do o[k] = v end
  env.client = api.new(o)
  return env
end

-- connect(env, acct) -> connects acct to the platform in the fake (OAuth).
local function connect(env, acct)
  env.fake.connections[acct] = { account = acct, scope = "read_write", livemode = false, connected = true }
end

local function assert_no_secret(err)
  for _, f in pairs(err) do
    if type(f) == "string" then lu.assertNotStrContains(f, SK) end
  end
  lu.assertNotStrContains(tostring(err), SK)
end

local TestApi = {}

function TestApi.test_with_and_without_stripe_account()
  local env = setup()
  connect(env, "acct_one")
  local platform = assert(env.client:account())
  lu.assertEquals(platform.id, "acct_platform_fake")
  lu.assertNil(env.sent[1].headers["Stripe-Account"])
  lu.assertEquals(env.sent[1].headers["Authorization"], "Bearer " .. SK)
  lu.assertEquals(env.sent[1].method, "GET")
  lu.assertNil(env.sent[1].headers["Idempotency-Key"], "no key on GET")
  local acct = assert(env.client:account("acct_one"))
  lu.assertEquals(acct.id, "acct_one")
  lu.assertEquals(env.sent[2].headers["Stripe-Account"], "acct_one")
  -- objects live per account
  local c = assert(env.client:post("/v1/customers", { email = "a@b.example", metadata = { order = 7 } },
    { account = "acct_one" }))
  lu.assertStrMatches(c.id, "cus_%x+")
  lu.assertEquals(c.metadata.order, "7")
  lu.assertEquals(env.sent[3].body, "email=a%40b.example&metadata[order]=7")
  lu.assertEquals(env.sent[3].headers["Content-Type"], "application/x-www-form-urlencoded")
  lu.assertStrMatches(env.sent[3].headers["Idempotency-Key"], "stripe%-connect%-retry%-%x+%-%x+%-4%x+%-[89ab]%x+%-%x+")
  lu.assertEquals(#assert(env.client:list_all("/v1/customers", nil, { account = "acct_one" })), 1)
  lu.assertEquals(#assert(env.client:list_all("/v1/customers")), 0, "the platform has none")
  local back = assert(env.client:get("/v1/customers/" .. c.id, nil, { account = "acct_one" }))
  lu.assertEquals(back.email, "a@b.example")
  lu.assertNil(back.name, "JSON nulls are left out")
end

function TestApi.test_version_params_and_query()
  local env = setup{ api_version = "2024-06-20" }
  env.client:get("/v1/customers", { limit = 3, expand = { "data.default_source" } })
  lu.assertEquals(env.sent[1].url, "https://fake.example/v1/customers?expand[0]=data.default_source&limit=3")
  lu.assertEquals(env.sent[1].headers["Stripe-Version"], "2024-06-20")
  env.client:get("/v1/account", nil, { api_version = "2025-01-01" })
  lu.assertEquals(env.sent[2].headers["Stripe-Version"], "2025-01-01")
  lu.assertErrorMsgContains("unknown option", env.client.request, env.client, { path = "/v1/x", nope = 1 })
  lu.assertErrorMsgContains("path must look like", env.client.request, env.client, { path = "https://evil/v1" })
  lu.assertErrorMsgContains("acct_", env.client.request, env.client, { path = "/v1/account", account = "bob" })
  lu.assertErrorMsgContains("max_network_retries", api.new, { max_network_retries = -1 })
end

function TestApi.test_typed_errors()
  local env = setup()
  local rows = {
    { 400, '{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card was declined.","param":"source","request_id":"req_1"}}',
      "card", "StripeCardError", "card_declined" },
    { 400, '{"error":{"type":"invalid_request_error","message":"Missing required param: email.","param":"email"}}',
      "invalid_request", "StripeInvalidRequestError" },
    { 400, '{"error":{"type":"idempotency_error","message":"Keys for idempotent requests …"}}',
      "idempotency", "StripeIdempotencyError" },
    { 401, '{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: ' .. SK .. '"}}',
      "authentication", "StripeAuthenticationError" },
    { 403, '{"error":{"type":"invalid_request_error","message":"no access","code":"account_invalid"}}',
      "permission", "StripePermissionError", "account_invalid" },
    { 429, '{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}',
      "rate_limit", "StripeRateLimitError", "rate_limit" },
    { 500, '{"error":{"type":"api_error","message":"Something went wrong"}}', "api", "StripeAPIError" },
    { 502, "<html>bad gateway</html>", "api", "StripeAPIError" },
  }
  for _, row in ipairs(rows) do
    env.script = { { status = row[1], headers = { ["request-id"] = "req_hdr" }, body = row[2] } }
    local res, err = env.client:get("/v1/account", nil, { max_network_retries = 0 })
    local name = row[1] .. " " .. row[3]
    lu.assertNil(res, name)
    lu.assertTrue(api.is_error(err), name)
    lu.assertEquals(err.status, row[1], name)
    lu.assertEquals(err.kind, row[3], name)
    lu.assertEquals(err.class, row[4], name)
    lu.assertEquals(err.code, row[5], name)
    lu.assertEquals(err.attempts, 1, name)
    assert_no_secret(err)
  end
  env.script = { { status = 400, headers = {}, body = rows[1][2] } }
  local _, err = env.client:get("/v1/account")
  lu.assertEquals(err.type, "card_error")
  lu.assertEquals(err.param, "source")
  lu.assertEquals(err.decline_code, "insufficient_funds")
  lu.assertEquals(err.request_id, "req_1")
  lu.assertStrContains(tostring(err), "card_declined")
  -- a connection failure
  env.script = { { code = "tls", message = "SSL certificate problem" } }
  _, err = env.client:get("/v1/account")
  lu.assertEquals(err.kind, "connection")
  lu.assertEquals(err.class, "StripeConnectionError")
  lu.assertEquals(err.code, "tls")
  lu.assertEquals(err.attempts, 1, "a TLS failure is not retried")
end

function TestApi.test_retry_rules()
  local env = setup()
  local function status(s, hint)
    return { status = s, headers = { ["stripe-should-retry"] = hint }, body = '{"error":{"type":"api_error","message":"x"}}' }
  end
  local rows = {
    -- scripted answers, then the fake answers; tries expected, ok?
    { "500 then ok", { status(500) }, 2, true },
    { "503 503 then ok", { status(503), status(503) }, 3, true },
    { "409 then ok", { status(409) }, 2, true },
    { "429 then ok", { status(429) }, 2, true },
    { "400 is final", { status(400) }, 1, false },
    { "404 is final", { status(404) }, 1, false },
    { "500 with Stripe-Should-Retry: false", { status(500, "false") }, 1, false },
    { "400 with Stripe-Should-Retry: true", { status(400, "true") }, 2, true },
    { "connect failure", { { code = "connect" } }, 2, true },
    { "timeout", { { code = "timeout" } }, 2, true },
    { "reset", { { code = "reset" } }, 2, true },
    { "too_large is final", { { code = "too_large" } }, 1, false },
    { "out of retries", { status(500), status(500), status(500) }, 3, false },
  }
  for _, row in ipairs(rows) do
    env.sent, env.sleeps, env.script = {}, {}, row[2]
    local res, err = env.client:post("/v1/customers", { email = "r@x.example" })
    lu.assertEquals(#env.sent, row[3], row[1])
    lu.assertEquals(res ~= nil, row[4], row[1] .. ": " .. tostring(err))
    lu.assertEquals(#env.sleeps, row[3] - 1, row[1])
    -- every try of one POST carries the same key
    for i = 2, #env.sent do
      lu.assertEquals(env.sent[i].headers["Idempotency-Key"], env.sent[1].headers["Idempotency-Key"], row[1])
    end
    if err then lu.assertEquals(err.attempts, row[3], row[1]) end
  end
  -- max_network_retries = 0: one try
  env.sent, env.script = {}, { status(500) }
  lu.assertNil((env.client:get("/v1/account", nil, { max_network_retries = 0 })))
  lu.assertEquals(#env.sent, 1)
end

function TestApi.test_backoff_like_stripe_node()
  -- min(0.5 * 2^(n-1), 5) scaled into [d/2, d), never under 0.5
  local rows = {
    { 1, 0, 0.5 }, { 1, 0.999, 0.5 }, { 2, 0, 0.5 }, { 2, 1, 1.0 }, { 3, 0.5, 1.5 }, { 4, 1, 4.0 },
    { 5, 1, 5.0 }, { 5, 0, 2.5 }, { 9, 0.5, 3.75 },
  }
  for _, row in ipairs(rows) do
    local d = api.retry_delay(row[1], nil, nil, function() return row[2] end)
    lu.assertAlmostEquals(d, row[3], 1e-9, string.format("retry %d, random %g", row[1], row[2]))
  end
  local env = setup{ max_network_retries = 4, random = function() return 1 end }
  env.script = {}
  for i = 1, 4 do env.script[i] = { code = "connect" } end
  assert(env.client:get("/v1/account"))
  lu.assertEquals(env.sleeps, { 0.5, 1, 2, 4 })
end

function TestApi.test_retried_post_is_applied_once()
  local env = setup()
  connect(env, "acct_once")
  -- the request reaches the fake, then the connection dies: the retry with
  -- the same key is answered from the first answer
  env.script = { { run_then = "reset" } }
  local c = assert(env.client:post("/v1/customers", { email = "once@x.example" }, { account = "acct_once" }))
  lu.assertEquals(#env.sent, 2)
  local stored = env.fake.objects["acct_once"].customers
  lu.assertEquals(#stored, 1, "one customer")
  lu.assertEquals(stored[1].id, c.id)
  -- the fake replayed it
  local log = env.fake.api_requests
  lu.assertTrue(log[#log].replayed)
  -- a 500 after the work (the answer lost): same
  env.fake.faults = { { path = "/v1/customers", status = 500, count = 1, when = "after" } }
  assert(env.client:post("/v1/customers", { email = "twice@x.example" }, { account = "acct_once" }))
  lu.assertEquals(#stored, 2)
  -- a caller's own key: the same key and body answer the same object again
  local a = assert(env.client:post("/v1/customers", { email = "k@x.example" }, { idempotency_key = "order-1" }))
  local b = assert(env.client:post("/v1/customers", { email = "k@x.example" }, { idempotency_key = "order-1" }))
  lu.assertEquals(a.id, b.id)
  local _, err = env.client:post("/v1/customers", { email = "other@x.example" }, { idempotency_key = "order-1" })
  lu.assertEquals(err.kind, "idempotency")
  lu.assertEquals(err.type, "idempotency_error")
  lu.assertEquals(err.attempts, 1)
  lu.assertEquals(#env.fake.objects["platform"].customers, 1)
end

function TestApi.test_pagination()
  local env = setup()
  connect(env, "acct_pages")
  local made = {}
  for i = 1, 7 do
    made[i] = assert(env.client:post("/v1/customers", { name = "c" .. i }, { account = "acct_pages" })).id
  end
  env.sent = {}
  local seen = {}
  for c, err in env.client:list("/v1/customers", { limit = 3 }, { account = "acct_pages" }) do
    lu.assertNil(err)
    seen[#seen + 1] = c.id
  end
  lu.assertEquals(#env.sent, 3, "three pages")
  lu.assertEquals(#seen, 7)
  lu.assertEquals(seen[1], made[7], "newest first")
  lu.assertEquals(seen[7], made[1])
  lu.assertStrContains(env.sent[2].url, "starting_after=" .. seen[3])
  lu.assertStrContains(env.sent[3].url, "starting_after=" .. seen[6])
  -- an error mid-way ends the loop with nil, err
  env.script = {}
  local n, failure = 0, nil
  local it = env.client:list("/v1/customers", { limit = 3 }, { account = "acct_pages", max_network_retries = 0 })
  for c, err in it do
    if err then failure = err break end
    n = n + 1
    if n == 3 then env.script = { { status = 400, headers = {}, body = '{"error":{"type":"invalid_request_error","message":"no"}}' } } end
  end
  lu.assertEquals(n, 3)
  lu.assertEquals(failure.kind, "invalid_request")
  local all, lerr = env.client:list_all("/v1/customers", { limit = 100 }, { account = "acct_pages" })
  lu.assertNil(lerr)
  lu.assertEquals(#all, 7)
end

function TestApi.test_not_connected_hook()
  local calls = {}
  local env = setup{ on_not_connected = function(id, err) calls[#calls + 1] = { id, err.status } end }
  connect(env, "acct_gone")
  assert(env.client:account("acct_gone"))
  env.fake:revoke("acct_gone")
  local res, err = env.client:account("acct_gone")
  lu.assertNil(res)
  lu.assertEquals(err.status, 403)
  lu.assertTrue(err.not_connected)
  lu.assertEquals(err.kind, "permission")
  lu.assertEquals(calls, { { "acct_gone", 403 } })
  -- a 403 as the platform (no account) is not about a connection
  env.script = { { status = 403, headers = {}, body = '{"error":{"type":"invalid_request_error","message":"no"}}' } }
  env.client:get("/v1/account")
  lu.assertEquals(#calls, 1)
  -- a bad platform key (401 without account_invalid) is not either
  local bad = api.new{ secret_key = "sk_test_wrong_key_0000000000", api_base = "https://fake.example",
    transport = env.transport, on_not_connected = function(id) calls[#calls + 1] = { id } end }
  connect(env, "acct_two")
  local _, e2 = bad:account("acct_two")
  lu.assertEquals(e2.status, 401)
  lu.assertNil(e2.not_connected)
  lu.assertEquals(#calls, 1)
  lu.assertNotStrContains(tostring(e2), "sk_test_wrong_key_0000000000")
end

function TestApi.test_module_client_and_missing_key()
  local env = setup()
  api.configure{ secret_key = SK, api_base = "https://fake.example", transport = env.transport }
  lu.assertEquals(assert(api.account()).id, "acct_platform_fake")
  lu.assertEquals(assert(api.request{ method = "GET", path = "/v1/account" }).id, "acct_platform_fake")
  local bare = api.new{ transport = env.transport }
  if not os.getenv("STRIPE_SECRET_KEY") then
    lu.assertErrorMsgContains("no secret key", bare.get, bare, "/v1/account")
  end
  api.configure{ secret_key = "sk_test_unset_again_000000", transport = function() return nil, "x", "connect" end,
    max_network_retries = 0 }
end

return { TestApi = TestApi }
