-- stripe_connect.oauth.authorize_url: the SDK vectors of doc/PROTOCOL.md §4
-- (node, python, ruby, go) compared as parsed parameter sets, the exact
-- query order, hosts and paths, every stripe_user field, and every rejection.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local oauth = require "stripe_connect.oauth"

local TestAuthorizeUrl = {}
local TestAuthorizeUrlPrefill = {}
local TestAuthorizeUrlRejects = {}

-- split(url) -> origin ("https://host"), path, params (parsed query).
local function split(url)
  local origin, path, query = url:match("^(https?://[^/?#]+)([^?#]*)%??([^#]*)$")
  assert(origin, "not an absolute URL: " .. url)
  return origin, path, assert(core.parse_query(query))
end

local function params(url)
  local _, _, p = split(url)
  return p
end

-- ------------------------------------------------------------- SDK vectors

function TestAuthorizeUrl.test_sdk_vectors()
  local prefill = { email = "test@example.com", url = "https://example.com/profile/test", country = "US" }
  local rows = {
    -- name, opts, origin, path, expected params (or an SDK URL to parse)
    { "node: host", { client_id = "default_client_id" }, "https://connect.stripe.com",
      "/oauth/authorize", { response_type = "code", client_id = "default_client_id", scope = "read_write" } },
    { "node: state", { client_id = "default_client_id", state = "some_state" },
      "https://connect.stripe.com", "/oauth/authorize",
      "https://connect.stripe.com/oauth/authorize?state=some_state&response_type=code" ..
      "&client_id=default_client_id&scope=read_write" },
    { "node: explicit client_id", { client_id = "123abc" }, "https://connect.stripe.com",
      "/oauth/authorize", { response_type = "code", client_id = "123abc", scope = "read_write" } },
    { "node: express", { client_id = "default_client_id", express = true },
      "https://connect.stripe.com", "/express/oauth/authorize",
      "https://connect.stripe.com/express/oauth/authorize?response_type=code" ..
      "&client_id=default_client_id&scope=read_write" },
    { "node: prefill", { client_id = "ca_123", scope = "read_write", state = "csrf_token", stripe_user = prefill },
      "https://connect.stripe.com", "/oauth/authorize",
      "https://connect.stripe.com/oauth/authorize?scope=read_write&state=csrf_token" ..
      "&stripe_user[email]=test%40example.com&stripe_user[url]=https%3A%2F%2Fexample.com%2Fprofile%2Ftest" ..
      "&stripe_user[country]=US&response_type=code&client_id=ca_123" },
    { "node: express capabilities",
      { client_id = "ca_123", express = true, always_prompt = true,
        suggested_capabilities = { "card_payments", "transfers" } },
      "https://connect.stripe.com", "/express/oauth/authorize",
      "https://connect.stripe.com/express/oauth/authorize?suggested_capabilities[0]=card_payments" ..
      "&suggested_capabilities[1]=transfers&always_prompt=true&response_type=code&client_id=ca_123" ..
      "&scope=read_write" },
    { "python: prefill (brackets percent-encoded)",
      { client_id = "ca_123", scope = "read_write", state = "csrf_token", stripe_user = prefill },
      "https://connect.stripe.com", "/oauth/authorize",
      "https://connect.stripe.com/oauth/authorize?scope=read_write&state=csrf_token" ..
      "&stripe_user%5Bemail%5D=test%40example.com" ..
      "&stripe_user%5Burl%5D=https%3A%2F%2Fexample.com%2Fprofile%2Ftest" ..
      "&stripe_user%5Bcountry%5D=US&client_id=ca_123&response_type=code" },
    { "python: express", { client_id = "ca_123", scope = "read_write", express = true },
      "https://connect.stripe.com", "/express/oauth/authorize",
      { response_type = "code", client_id = "ca_123", scope = "read_write" } },
    { "ruby: prefill", { client_id = "ca_test", scope = "read_write", state = "csrf_token", stripe_user = prefill },
      "https://connect.stripe.com", "/oauth/authorize",
      { response_type = "code", client_id = "ca_test", scope = "read_write", state = "csrf_token",
        ["stripe_user[email]"] = "test@example.com",
        ["stripe_user[url]"] = "https://example.com/profile/test", ["stripe_user[country]"] = "US" } },
    { "ruby: connect_base", { client_id = "ca_test", connect_base = "https://other.stripe.com" },
      "https://other.stripe.com", "/oauth/authorize",
      { response_type = "code", client_id = "ca_test", scope = "read_write" } },
    { "ruby: express", { client_id = "foo", express = true }, "https://connect.stripe.com",
      "/express/oauth/authorize", { response_type = "code", client_id = "foo", scope = "read_write" } },
    { "go: encodings (go writes spaces as +)",
      { client_id = "ca_123", redirect_uri = "https://t.example.com", always_prompt = true,
        express = true, suggested_capabilities = { "card_payments" },
        stripe_user = { email = "test@example.com", street_address = "123 main", dob_day = 15,
                        dob_month = 6, dob_year = 1990, physical_product = false } },
      "https://connect.stripe.com", "/express/oauth/authorize",
      "https://connect.stripe.com/express/oauth/authorize?always_prompt=true&client_id=ca_123" ..
      "&redirect_uri=https%3A%2F%2Ft.example.com&response_type=code&scope=read_write" ..
      "&stripe_user[dob_day]=15&stripe_user[dob_month]=6&stripe_user[dob_year]=1990" ..
      "&stripe_user[email]=test%40example.com&stripe_user[physical_product]=false" ..
      "&stripe_user[street_address]=123+main&suggested_capabilities[0]=card_payments" },
  }
  for _, r in ipairs(rows) do
    local origin, path, got = split(oauth.authorize_url(r[2]))
    lu.assertEquals(origin, r[3], r[1])
    lu.assertEquals(path, r[4], r[1])
    local want = type(r[5]) == "string" and params(r[5]) or r[5]
    lu.assertEquals(got, want, r[1])
  end
end

function TestAuthorizeUrl.test_exact_urls_in_fixed_order()
  local rows = {
    { "defaults", { client_id = "ca_123" },
      "https://connect.stripe.com/oauth/authorize?response_type=code&client_id=ca_123&scope=read_write" },
    { "every top-level parameter",
      { state = "s1", client_id = "ca_123", scope = "read_only", stripe_landing = "login",
        redirect_uri = "https://platform.example/oauth/callback?x=1", always_prompt = false,
        response_type = "code", stripe_user = { country = "US", email = "j@x.io" } },
      "https://connect.stripe.com/oauth/authorize?response_type=code&client_id=ca_123" ..
      "&scope=read_only&redirect_uri=https%3A%2F%2Fplatform.example%2Foauth%2Fcallback%3Fx%3D1" ..
      "&state=s1&stripe_landing=login&always_prompt=false" ..
      "&stripe_user[email]=j%40x.io&stripe_user[country]=US" },
    { "express with capabilities",
      { client_id = "ca_123", express = true, suggested_capabilities = { "card_payments", "transfers" } },
      "https://connect.stripe.com/express/oauth/authorize?response_type=code&client_id=ca_123" ..
      "&scope=read_write&suggested_capabilities[0]=card_payments&suggested_capabilities[1]=transfers" },
    { "connect_base trailing slash", { client_id = "ca_1", connect_base = "http://127.0.0.1:4242/" },
      "http://127.0.0.1:4242/oauth/authorize?response_type=code&client_id=ca_1&scope=read_write" },
    { "connect_base with a path prefix", { client_id = "ca_1", connect_base = "https://fake.test/connect//" },
      "https://fake.test/connect/oauth/authorize?response_type=code&client_id=ca_1&scope=read_write" },
    { "state needing escapes", { client_id = "ca_1", state = "a b/c+d=e&f" },
      "https://connect.stripe.com/oauth/authorize?response_type=code&client_id=ca_1&scope=read_write" ..
      "&state=a%20b%2Fc%2Bd%3De%26f" },
    { "empty capabilities emit nothing", { client_id = "ca_1", express = true, suggested_capabilities = {} },
      "https://connect.stripe.com/express/oauth/authorize?response_type=code&client_id=ca_1&scope=read_write" },
  }
  for _, r in ipairs(rows) do
    lu.assertEquals(oauth.authorize_url(r[2]), r[3], r[1])
  end
end

function TestAuthorizeUrl.test_state_round_trips()
  local state = core.base64url_encode(core.random_bytes(32)) .. ".x~y"
  lu.assertEquals(params(oauth.authorize_url{ client_id = "ca_1", state = state }).state, state)
end

function TestAuthorizeUrl.test_redirect_uris_accepted()
  local rows = {
    "https://platform.example/oauth/callback",
    "http://localhost:3000/cb",
    "http://127.0.0.1:8080/oauth/callback?from=connect",
    "https://[::1]:8443/cb",
    "HTTPS://Platform.Example",
  }
  for _, uri in ipairs(rows) do
    lu.assertEquals(params(oauth.authorize_url{ client_id = "ca_1", redirect_uri = uri }).redirect_uri, uri, uri)
  end
end

-- ----------------------------------------------------------------- prefill

local ALL_FIELDS = {
  email = "jenny@example.com", url = "https://jenny.example", country = "JP",
  phone_number = "0312345678", business_name = "Jenny's", business_type = "sole_prop",
  first_name = "Jenny", last_name = "Rosen", dob_day = 1, dob_month = 2, dob_year = 1980,
  street_address = "1-2-3 Chiyoda", city = "Tokyo", state = "TK", zip = "1000001",
  physical_product = true, product_description = "Tea & cake", currency = "jpy",
  first_name_kana = "ジェニー", first_name_kanji = "ジェニー", last_name_kana = "ローゼン",
  last_name_kanji = "ローゼン", gender = "female", block_kana = "1", block_kanji = "1",
  building_kana = "ビル", building_kanji = "ビル",
}

function TestAuthorizeUrlPrefill.test_every_documented_field_accepted()
  local n = 0
  for _ in pairs(ALL_FIELDS) do n = n + 1 end
  lu.assertEquals(n, #oauth.STRIPE_USER_FIELDS)
  local p = params(oauth.authorize_url{ client_id = "ca_1", stripe_user = ALL_FIELDS })
  for _, field in ipairs(oauth.STRIPE_USER_FIELDS) do
    local want = ALL_FIELDS[field]
    lu.assertEquals(p["stripe_user[" .. field .. "]"], tostring(want), field)
  end
end

function TestAuthorizeUrlPrefill.test_fields_in_documented_order()
  local url = oauth.authorize_url{ client_id = "ca_1", stripe_user = ALL_FIELDS }
  local last = 0
  for _, field in ipairs(oauth.STRIPE_USER_FIELDS) do
    local at = url:find("&stripe_user[" .. field .. "]=", 1, true)
    lu.assertTrue(at ~= nil and at > last, field)
    last = at
  end
end

function TestAuthorizeUrlPrefill.test_value_forms()
  local rows = {
    -- name, stripe_user, expected params subset
    { "dob as strings", { dob_day = "05", dob_month = "12", dob_year = "1999" },
      { ["stripe_user[dob_day]"] = "5", ["stripe_user[dob_month]"] = "12", ["stripe_user[dob_year]"] = "1999" } },
    { "physical_product string true", { physical_product = "true" }, { ["stripe_user[physical_product]"] = "true" } },
    { "physical_product false", { physical_product = false }, { ["stripe_user[physical_product]"] = "false" } },
    { "every business type", { business_type = "llc" }, { ["stripe_user[business_type]"] = "llc" } },
    { "empty strings left out", { email = "", business_name = "", country = "US" },
      { ["stripe_user[country]"] = "US" } },
    { "utf-8 name", { first_name = "Jürgen" }, { ["stripe_user[first_name]"] = "Jürgen" } },
  }
  for _, r in ipairs(rows) do
    local p = params(oauth.authorize_url{ client_id = "ca_1", stripe_user = r[2] })
    p.response_type, p.client_id, p.scope = nil, nil, nil
    lu.assertEquals(p, r[3], r[1])
  end
  for _, t in ipairs(oauth.BUSINESS_TYPES) do
    lu.assertStrContains(oauth.authorize_url{ client_id = "ca_1", stripe_user = { business_type = t } },
      "stripe_user[business_type]=" .. t)
  end
end

function TestAuthorizeUrlPrefill.test_drop_mode()
  local rows = {
    -- name, stripe_user, expected kept params, expected dropped
    { "nothing to drop", { email = "a@b.c" }, { ["stripe_user[email]"] = "a@b.c" }, {} },
    { "bad values dropped",
      { email = "nope", url = "example.com", country = "US", phone_number = "555-1234", currency = "USD" },
      { ["stripe_user[country]"] = "US" }, { "currency", "email", "phone_number", "url" } },
    { "phone without country", { phone_number = "0123456789" }, {}, { "phone_number" } },
    { "incomplete dob", { dob_day = 1, dob_month = 2, first_name = "J" },
      { ["stripe_user[first_name]"] = "J" }, { "dob_day", "dob_month" } },
    { "invalid dob part drops the rest", { dob_day = 40, dob_month = 2, dob_year = 1990 }, {},
      { "dob_day", "dob_month", "dob_year" } },
  }
  for _, r in ipairs(rows) do
    local url, dropped = oauth.authorize_url{ client_id = "ca_1", stripe_user = r[2], invalid_prefill = "drop" }
    local p = params(url)
    p.response_type, p.client_id, p.scope = nil, nil, nil
    lu.assertEquals(p, r[3], r[1])
    lu.assertEquals(dropped, r[4], r[1])
  end
  -- Structure is still the program's: unknown fields raise in drop mode too.
  lu.assertErrorMsgContains("unknown stripe_user field 'emali'", oauth.authorize_url,
    { client_id = "ca_1", stripe_user = { emali = "x" }, invalid_prefill = "drop" })
  -- The usual call answers the URL alone.
  lu.assertEquals(select("#", oauth.authorize_url{ client_id = "ca_1" }), 1)
end

-- --------------------------------------------------------------- rejections

function TestAuthorizeUrlRejects.test_misuse_raises()
  local rows = {
    { "no options", nil, "options table expected" },
    { "missing client_id", {}, "client_id is required" },
    { "empty client_id", { client_id = "" }, "client_id is required" },
    { "client_id not a string", { client_id = 123 }, "client_id must be a string" },
    { "client_id with a space", { client_id = "ca_1 x" }, "client_id must be a string without spaces" },
    { "unknown option", { client_id = "ca_1", clientid = "x" }, "unknown option 'clientid'" },
    { "numeric option key", { client_id = "ca_1", [1] = "x" }, "unknown option '1'" },
    { "response_type token", { client_id = "ca_1", response_type = "token" }, 'response_type must be "code"' },
    { "bad scope", { client_id = "ca_1", scope = "admin" }, 'scope must be "read_write" or "read_only"' },
    { "relative redirect_uri", { client_id = "ca_1", redirect_uri = "/callback" },
      "redirect_uri must be an absolute http or https URL" },
    { "ftp redirect_uri", { client_id = "ca_1", redirect_uri = "ftp://x.example/cb" },
      "redirect_uri must be an absolute http or https URL" },
    { "javascript redirect_uri", { client_id = "ca_1", redirect_uri = "javascript:alert(1)" },
      "redirect_uri must be an absolute http or https URL" },
    { "scheme-relative redirect_uri", { client_id = "ca_1", redirect_uri = "//evil.example/cb" },
      "redirect_uri must be an absolute http or https URL" },
    { "no host", { client_id = "ca_1", redirect_uri = "https:///cb" }, "redirect_uri must have a valid host" },
    { "bad port", { client_id = "ca_1", redirect_uri = "https://x.example:abc/cb" },
      "redirect_uri must have a valid host" },
    { "user info", { client_id = "ca_1", redirect_uri = "https://platform.example@evil.example/" },
      "redirect_uri must not contain user information" },
    { "space", { client_id = "ca_1", redirect_uri = "https://x.example/a b" },
      "redirect_uri must not contain spaces" },
    { "fragment", { client_id = "ca_1", redirect_uri = "https://x.example/cb#top" },
      "redirect_uri must not contain a fragment" },
    { "redirect_uri not a string", { client_id = "ca_1", redirect_uri = true }, "redirect_uri must be a string" },
    { "empty state", { client_id = "ca_1", state = "" }, "state must be a non-empty string" },
    { "state not a string", { client_id = "ca_1", state = 42 }, "state must be a non-empty string" },
    { "bad stripe_landing", { client_id = "ca_1", stripe_landing = "signup" },
      'stripe_landing must be "login" or "register"' },
    { "always_prompt as string", { client_id = "ca_1", always_prompt = "true" }, "always_prompt must be a boolean" },
    { "express as string", { client_id = "ca_1", express = "yes" }, "express must be a boolean" },
    { "capabilities without express", { client_id = "ca_1", suggested_capabilities = { "card_payments" } },
      "suggested_capabilities is Express only" },
    { "capabilities not a list", { client_id = "ca_1", express = true, suggested_capabilities = "card_payments" },
      "suggested_capabilities must be an array of strings" },
    { "capabilities with a map key", { client_id = "ca_1", express = true, suggested_capabilities = { x = "y" } },
      "suggested_capabilities must be an array of strings" },
    { "relative connect_base", { client_id = "ca_1", connect_base = "connect.stripe.com" },
      "connect_base must be an absolute http or https URL" },
    { "connect_base with query", { client_id = "ca_1", connect_base = "https://x.example/?a=1" },
      "connect_base must not have a query or fragment" },
    { "bad invalid_prefill", { client_id = "ca_1", invalid_prefill = "ignore" },
      'invalid_prefill must be "error" or "drop"' },
    { "stripe_user not a table", { client_id = "ca_1", stripe_user = "jenny@example.com" },
      "stripe_user must be a table" },
    { "unknown stripe_user field", { client_id = "ca_1", stripe_user = { emial = "x@y.z" } },
      "unknown stripe_user field 'emial'" },
    { "stripe_user array", { client_id = "ca_1", stripe_user = { "x" } }, "unknown stripe_user field '1'" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(oauth.authorize_url, r[2])
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(err, "authorize_url: " .. r[3], false, r[1])
  end
end

function TestAuthorizeUrlRejects.test_invalid_prefill_values_raise_by_default()
  local rows = {
    { "email", { email = "jenny" }, "email must be an email address" },
    { "email with space", { email = "j enny@example.com" }, "email must be an email address" },
    { "url without scheme", { url = "jenny.example" }, "url must be an absolute http or https URL" },
    { "country", { country = "USA" }, "country must be a two-letter country code" },
    { "phone digits", { country = "US", phone_number = "555-123-4567" }, "phone_number must be 10 digits" },
    { "phone length", { country = "US", phone_number = "12345678901" }, "phone_number must be 10 digits" },
    { "phone needs country", { phone_number = "5551234567" }, "phone_number needs stripe_user.country" },
    { "business_type", { business_type = "company" }, "business_type must be one of sole_prop" },
    { "dob_day range", { dob_day = 32, dob_month = 1, dob_year = 1990 },
      "dob_day must be a whole number from 1 to 31" },
    { "dob_month zero", { dob_day = 1, dob_month = 0, dob_year = 1990 }, "dob_month must be a whole number" },
    { "dob_year text", { dob_day = 1, dob_month = 1, dob_year = "19x0" }, "dob_year must be a whole number" },
    { "dob fraction", { dob_day = 1.5, dob_month = 1, dob_year = 1990 }, "dob_day must be a whole number" },
    { "dob incomplete", { dob_day = 1, dob_month = 1 },
      "dob_day, dob_month and dob_year must be given together" },
    { "physical_product", { physical_product = "yes" }, "physical_product must be a boolean" },
    { "currency upper", { currency = "USD" }, "currency must be a lowercase three-letter" },
    { "state code", { state = "California" }, "state must be a two-letter code" },
    { "text not a string", { first_name = 42 }, "first_name must be a string" },
    { "zip as number", { zip = 94107 }, "zip must be a string" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(oauth.authorize_url, { client_id = "ca_1", stripe_user = r[2] })
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(err, "authorize_url: stripe_user." .. r[3], false, r[1])
  end
end

function TestAuthorizeUrlRejects.test_errors_never_quote_values()
  local secretish = "jenny-private@@example.com"
  local ok, err = pcall(oauth.authorize_url, { client_id = "ca_1", stripe_user = { email = secretish } })
  lu.assertFalse(ok)
  lu.assertNotStrContains(err, secretish)
end

return {
  TestAuthorizeUrl = TestAuthorizeUrl,
  TestAuthorizeUrlPrefill = TestAuthorizeUrlPrefill,
  TestAuthorizeUrlRejects = TestAuthorizeUrlRejects,
}
