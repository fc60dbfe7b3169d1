-- C core codec: percent-encoding, form encoding with Stripe's bracket rules,
-- and the query / form / Cookie parsers with their limits.  Table-driven
-- rows { name, input, expected }.  Runs under Lua 5.4 and LuaJIT.
local lu = require "luaunit"
local core = require "stripe_connect.core"

local TestUrlCodec = {}
local TestFormEncode = {}
local TestParseQuery = {}
local TestParseForm = {}
local TestParseCookies = {}

-- ------------------------------------------------------------ url_encode/decode

local url_encode_rows = {
  { "empty", "", "" },
  { "plain", "abc", "abc" },
  { "unreserved kept", "AZaz09-._~", "AZaz09-._~" },
  { "space", "a b", "a%20b" },
  { "plus", "a+b", "a%2Bb" },
  { "gen-delims", ":/?#[]@", "%3A%2F%3F%23%5B%5D%40" },
  { "sub-delims", "!$&'()*+,;=", "%21%24%26%27%28%29%2A%2B%2C%3B%3D" },
  { "percent", "100%", "100%25" },
  { "utf-8 bytes", "caf\195\169 \226\130\172", "caf%C3%A9%20%E2%82%AC" },
  { "nul and high bytes", "\0\1\127\128\255", "%00%01%7F%80%FF" },
  { "url", "https://example.com/profile/test", "https%3A%2F%2Fexample.com%2Fprofile%2Ftest" },
  { "email", "test@example.com", "test%40example.com" },
}

function TestUrlCodec.test_url_encode()
  for _, r in ipairs(url_encode_rows) do
    lu.assertEquals(core.url_encode(r[2]), r[3], r[1])
  end
end

function TestUrlCodec.test_url_decode_inverts_url_encode()
  for _, r in ipairs(url_encode_rows) do
    lu.assertEquals(core.url_decode(r[3]), r[2], r[1])
  end
end

function TestUrlCodec.test_round_trip_every_byte()
  local bytes = {}
  for b = 0, 255 do bytes[#bytes + 1] = string.char(b) end
  local s = table.concat(bytes)
  lu.assertEquals(core.url_decode(core.url_encode(s)), s)
  lu.assertEquals(core.url_decode(core.url_encode(s), true), s)
  for n = 1, 32 do
    local r = core.random_bytes(n)
    lu.assertEquals(core.url_decode(core.url_encode(r)), r)
  end
end

function TestUrlCodec.test_url_decode()
  local rows = {
    -- name, input, plus_as_space, expected
    { "plus kept by default", "a+b", nil, "a+b" },
    { "plus kept when false", "a+b", false, "a+b" },
    { "plus as space", "a+b", true, "a b" },
    { "encoded plus stays plus", "a%2Bb", true, "a+b" },
    { "lowercase hex", "caf%c3%a9", nil, "caf\195\169" },
    { "raw utf-8 passes through", "caf\195\169", nil, "caf\195\169" },
    { "encoded percent", "%2541", nil, "%41" },
    { "no escapes", "plain", nil, "plain" },
    { "empty", "", nil, "" },
    { "nul byte", "a%00b", nil, "a\0b" },
  }
  for _, r in ipairs(rows) do
    lu.assertEquals(core.url_decode(r[2], r[3]), r[4], r[1])
  end
end

function TestUrlCodec.test_url_decode_malformed()
  local rows = {
    { "bad hex", "%zz", "at byte 1" },
    { "one bad digit", "%4g", "at byte 1" },
    { "truncated", "%4", "at byte 1" },
    { "lone percent", "%", "at byte 1" },
    { "trailing percent", "abc%", "at byte 4" },
    { "later escape", "a%20b%2", "at byte 6" },
    { "non-ascii after percent", "%\195\169", "at byte 1" },
  }
  for _, r in ipairs(rows) do
    local v, err = core.url_decode(r[2])
    lu.assertNil(v, r[1])
    lu.assertStrContains(err, "malformed percent-escape " .. r[3], false, r[1])
  end
end

function TestUrlCodec.test_misuse_raises()
  lu.assertErrorMsgContains("bad argument #1", core.url_encode, nil)
  lu.assertErrorMsgContains("bad argument #1", core.url_decode, {})
  lu.assertErrorMsgContains("bad argument #2", core.url_decode, "a", "yes")
end

-- -------------------------------------------------------------- form_encode

local function nested(depth)
  local t = { leaf = "x" }
  for _ = 1, depth - 1 do t = { a = t } end
  return t
end

function TestFormEncode.test_rows()
  local rows = {
    { "empty table", {}, "" },
    { "empty nested table emits nothing", { a = {}, b = "1" }, "b=1" },
    { "empty string value", { a = "" }, "a=" },
    { "sorted keys", { b = "1", a = "2", B = "3" }, "B=3&a=2&b=1" },
    { "booleans", { t = true, f = false }, "f=false&t=true" },
    { "integers", { a = 15, b = -2, c = 0 }, "a=15&b=-2&c=0" },
    { "integral float", { a = 3.0 }, "a=3" },
    { "fraction", { a = 1.5, b = 0.1 }, "a=1.5&b=0.1" },
    { "value escaping", { a = "x y&z=1+2" }, "a=x%20y%26z%3D1%2B2" },
    { "utf-8 value", { name = "J\195\188rgen" }, "name=J%C3%BCrgen" },
    { "key escaping", { ["a b"] = "1" }, "a%20b=1" },
    { "bracket in a key name is encoded", { ["a[b]"] = "1" }, "a%5Bb%5D=1" },
    { "nested", { a = { b = { c = "d" } } }, "a[b][c]=d" },
    { "array of tables", { items = { { price = "p_1", quantity = 2 } } },
      "items[0][price]=p_1&items[0][quantity]=2" },
    { "nested arrays", { m = { { "a", "b" }, { "c" } } }, "m[0][0]=a&m[0][1]=b&m[1][0]=c" },
    -- doc/PROTOCOL.md §4 shapes
    { "python/ruby authorize prefill",
      { scope = "read_write", state = "csrf_token",
        stripe_user = { email = "test@example.com", url = "https://example.com/profile/test",
                        country = "US" } },
      "scope=read_write&state=csrf_token&stripe_user[country]=US" ..
      "&stripe_user[email]=test%40example.com" ..
      "&stripe_user[url]=https%3A%2F%2Fexample.com%2Fprofile%2Ftest" },
    { "node express capabilities",
      { suggested_capabilities = { "card_payments", "transfers" }, always_prompt = true },
      "always_prompt=true&suggested_capabilities[0]=card_payments&suggested_capabilities[1]=transfers" },
    { "go redirect_uri", { redirect_uri = "https://t.example.com" },
      "redirect_uri=https%3A%2F%2Ft.example.com" },
    { "go stripe_user fields",
      { stripe_user = { street_address = "123 main", dob_day = 15, physical_product = false } },
      "stripe_user[dob_day]=15&stripe_user[physical_product]=false&stripe_user[street_address]=123%20main" },
    { "token body", { grant_type = "authorization_code", code = "ac_123" },
      "code=ac_123&grant_type=authorization_code" },
    { "go assert_capabilities", { assert_capabilities = { "card_payments" } },
      "assert_capabilities[0]=card_payments" },
    { "deauthorize body", { client_id = "ca_123", stripe_user_id = "acct_1" },
      "client_id=ca_123&stripe_user_id=acct_1" },
    { "depth 32 is allowed", nested(32),
      "a" .. string.rep("[a]", 30) .. "[leaf]=x" },
  }
  for _, r in ipairs(rows) do
    lu.assertEquals(core.form_encode(r[2]), r[3], r[1])
  end
end

function TestFormEncode.test_round_trips_through_parse_form()
  local t = { stripe_user = { email = "a+b@example.com", business_name = "Caf\195\169 & Co" },
              suggested_capabilities = { "card_payments" }, always_prompt = true }
  lu.assertEquals(core.parse_form(core.form_encode(t)), {
    ["stripe_user[email]"] = "a+b@example.com",
    ["stripe_user[business_name]"] = "Caf\195\169 & Co",
    ["suggested_capabilities[0]"] = "card_payments",
    always_prompt = "true",
  })
end

function TestFormEncode.test_rejects()
  local cycle = { a = {} }
  cycle.a.b = cycle
  local self_cycle = {}
  self_cycle.me = self_cycle
  local shared = { x = "1" }
  local rows = {
    { "function value", { a = print }, "unsupported value of type function at 'a'" },
    { "userdata value", { a = io.stdout }, "unsupported value of type userdata" },
    { "nested bad value", { a = { b = { c = print } } }, "at 'a[b][c]'" },
    { "cycle", cycle, "cycle at 'a[b]'" },
    { "self cycle", self_cycle, "cycle at 'me'" },
    { "too deep", nested(33), "nested too deeply" },
    { "mixed keys", { a = { 1, 2, x = 3 } }, "mixes string keys and array indexes at 'a'" },
    { "sparse array", { a = { [1] = "x", [3] = "y" } }, "sparse array at 'a'" },
    { "array from 0", { a = { [0] = "x" } }, "not a string or an array index" },
    { "fractional key", { a = { [1.5] = "x" } }, "not a string or an array index" },
    -- infinite and huge keys: on LuaJIT the integer test cast them to long
    -- long before any range check (undefined behaviour); now range first
    { "infinite key", { a = { [1 / 0] = "x" } }, "not a string or an array index" },
    { "negative infinite key", { a = { [-1 / 0] = "x" } }, "not a string or an array index" },
    { "huge key", { a = { [2 ^ 70] = "x" } }, "form_encode" },
    { "boolean key", { [true] = "x" }, "key of type boolean" },
    { "top-level array", { "x" }, "top-level keys must be strings" },
    { "empty key", { [""] = "x" }, "empty key name" },
    { "empty nested key", { a = { [""] = "x" } }, "empty key name at 'a'" },
    { "nan", { a = 0 / 0 }, "not finite at 'a'" },
    { "inf", { a = 1 / 0 }, "not finite" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(core.form_encode, r[2])
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(err, "form_encode: " , false, r[1])
    lu.assertStrContains(err, r[3], false, r[1])
  end
  -- The same table twice (not a cycle) is fine.
  lu.assertEquals(core.form_encode({ a = shared, b = shared }), "a[x]=1&b[x]=1")
  lu.assertErrorMsgContains("bad argument #1", core.form_encode, "a=1")
end

-- ---------------------------------------------------------------- parsers

local function many_fields(n)
  local t = {}
  for i = 1, n do t[i] = "f" .. i .. "=" .. i end
  return table.concat(t, "&")
end

local query_rows = {
  { "empty", "", {} },
  { "two fields", "a=1&b=2", { a = "1", b = "2" } },
  { "name without =", "a", { a = "" } },
  { "empty value", "a=", { a = "" } },
  { "empty name dropped", "=x&a=1", { a = "1" } },
  { "empty fields skipped", "&a=1&&b=2&", { a = "1", b = "2" } },
  { "repeated key", "a=1&a=2", { a = { "1", "2" } } },
  { "repeated key three times, in order", "a=3&b=x&a=1&a=2", { a = { "3", "1", "2" }, b = "x" } },
  { "repeated empty values", "a&a=", { a = { "", "" } } },
  { "value with =", "a=b=c", { a = "b=c" } },
  { "plus is space", "q=a+b", { q = "a b" } },
  { "encoded plus", "q=a%2Bb", { q = "a+b" } },
  { "encoded name", "%61%5Bb%5D=1", { ["a[b]"] = "1" } },
  { "literal brackets", "stripe_user[email]=x%40y.com", { ["stripe_user[email]"] = "x@y.com" } },
  { "utf-8 escapes", "n=caf%C3%A9", { n = "caf\195\169" } },
  { "raw utf-8", "n=caf\195\169", { n = "caf\195\169" } },
  { "semicolon is data", "a=1;b=2", { a = "1;b=2" } },
  { "stripe callback", "code=ac_123&scope=read_write&state=s.t-u_v",
    { code = "ac_123", scope = "read_write", state = "s.t-u_v" } },
  { "stripe denial",
    "error=access_denied&error_description=The%20user%20denied%20your%20request&state=xyz",
    { error = "access_denied", error_description = "The user denied your request", state = "xyz" } },
}

function TestParseQuery.test_rows()
  for _, r in ipairs(query_rows) do
    lu.assertEquals(core.parse_query(r[2]), r[3], r[1])
  end
end

function TestParseQuery.test_plus_as_space_false()
  lu.assertEquals(core.parse_query("q=a+b&a+b=1", { plus_as_space = false }),
    { q = "a+b", ["a+b"] = "1" })
  lu.assertEquals(core.parse_query("q=a+b", { plus_as_space = true }), { q = "a b" })
end

local function assert_fails(fn, s, opts, code, msg, name)
  local t, err, c = fn(s, opts)
  lu.assertNil(t, name)
  lu.assertEquals(c, code, name)
  lu.assertStrContains(err, msg, false, name)
end

function TestParseQuery.test_malformed()
  local rows = {
    { "bad value escape", "a=%zz", "field 1" },
    { "truncated value escape", "a=1&b=%4", "field 2" },
    { "bad name escape", "%=1", "field 1" },
    { "lone percent value", "a=1&b=2&c=%", "field 3" },
  }
  for _, r in ipairs(rows) do
    assert_fails(core.parse_query, r[2], nil, "malformed",
      "parse_query: malformed percent-escape in " .. r[3], r[1])
  end
end

function TestParseQuery.test_limits()
  lu.assertNotNil(core.parse_query("a=123", { max_length = 5 }))
  assert_fails(core.parse_query, "a=1234", { max_length = 5 }, "too_large", "max_length (5 bytes)",
    "length over")
  lu.assertNotNil(core.parse_query("a=1&b=2", { max_fields = 2 }))
  lu.assertNotNil(core.parse_query("a=1&&&b=2&", { max_fields = 2 }))
  assert_fails(core.parse_query, "a=1&b=2&c=3", { max_fields = 2 }, "too_many_fields",
    "more than max_fields (2)", "fields over")
  assert_fails(core.parse_query, "=1&=2&=3", { max_fields = 2 }, "too_many_fields",
    "max_fields", "empty names count")
  lu.assertEquals(core.parse_query("", { max_length = 0, max_fields = 0 }), {})
  -- defaults: 64 KiB, 256 fields
  lu.assertNotNil(core.parse_query("a=" .. string.rep("x", 65536 - 2)))
  assert_fails(core.parse_query, "a=" .. string.rep("x", 65536 - 1), nil, "too_large", "65536", "default length")
  lu.assertNotNil(core.parse_query(many_fields(256)))
  assert_fails(core.parse_query, many_fields(257), nil, "too_many_fields", "256", "default fields")
end

function TestParseQuery.test_options_misuse_raises()
  local rows = {
    { "unknown key", { max_size = 1 }, "unknown option 'max_size'" },
    { "negative", { max_length = -1 }, "option max_length must be a non-negative whole number" },
    { "fraction", { max_fields = 1.5 }, "option max_fields must be a non-negative whole number" },
    { "string", { max_length = "10" }, "option max_length must be" },
    { "plus not boolean", { plus_as_space = 1 }, "option plus_as_space must be a boolean" },
    { "not a table", "x", "options must be a table" },
  }
  for _, r in ipairs(rows) do
    local ok, err = pcall(core.parse_query, "a=1", r[2])
    lu.assertFalse(ok, r[1])
    lu.assertStrContains(err, "parse_query: " .. r[3], false, r[1])
  end
  lu.assertErrorMsgContains("bad argument #1", core.parse_query, nil)
end

function TestParseForm.test_rows()
  for _, r in ipairs(query_rows) do
    lu.assertEquals(core.parse_form(r[2]), r[3], r[1])
  end
  lu.assertEquals(core.parse_form("grant_type=authorization_code&code=ac_1+2"),
    { grant_type = "authorization_code", code = "ac_1 2" })
end

function TestParseForm.test_limits_and_errors()
  local mib = 1024 * 1024
  lu.assertNotNil(core.parse_form("a=" .. string.rep("x", mib - 2)))
  assert_fails(core.parse_form, "a=" .. string.rep("x", mib - 1), nil, "too_large",
    "parse_form: input longer than max_length (1048576 bytes)", "default length")
  assert_fails(core.parse_form, many_fields(257), nil, "too_many_fields", "parse_form:", "fields")
  assert_fails(core.parse_form, "a=%G0", nil, "malformed", "parse_form:", "escape")
  lu.assertErrorMsgContains("parse_form: unknown option 'x'", core.parse_form, "a", { x = 1 })
end

function TestParseCookies.test_rows()
  local rows = {
    { "empty", "", {} },
    { "only separators", " ; ;; ", {} },
    { "two cookies", "a=1; b=2", { a = "1", b = "2" } },
    { "no space after ;", "a=1;b=2", { a = "1", b = "2" } },
    { "spaces around", "  a = 1  ;\tb=2 ", { a = "1", b = "2" } },
    { "quoted value", 'a="quoted value"', { a = "quoted value" } },
    { "quoted with spaces around", 'a = "x" ; b=y', { a = "x", b = "y" } },
    { "empty quoted", 'a=""', { a = "" } },
    { "lone quote kept", 'a="', { a = '"' } },
    { "empty value", "a=; b=2", { a = "", b = "2" } },
    { "no = ignored", "a; b=2", { b = "2" } },
    { "empty name ignored", "=x; b=2", { b = "2" } },
    { "value with =", "a=b=c", { a = "b=c" } },
    { "not percent-decoded", "a=x%20y+z", { a = "x%20y+z" } },
    { "repeated name", "a=1; b=2; a=3", { a = { "1", "3" }, b = "2" } },
    { "host-prefixed state cookie", "__Host-sc_state=abc.def-_; theme=dark",
      { ["__Host-sc_state"] = "abc.def-_", theme = "dark" } },
    { "utf-8 bytes kept", "n=caf\195\169", { n = "caf\195\169" } },
  }
  for _, r in ipairs(rows) do
    lu.assertEquals(core.parse_cookies(r[2]), r[3], r[1])
  end
end

function TestParseCookies.test_limits_and_misuse()
  lu.assertNotNil(core.parse_cookies("a=" .. string.rep("x", 8192 - 2)))
  assert_fails(core.parse_cookies, "a=" .. string.rep("x", 8192 - 1), nil, "too_large",
    "parse_cookies: input longer than max_length (8192 bytes)", "default length")
  assert_fails(core.parse_cookies, "a=1; b=2; c=3", { max_fields = 2 }, "too_many_fields",
    "more than max_fields (2)", "fields")
  local many = {}
  for i = 1, 257 do many[i] = "c" .. i .. "=1" end
  assert_fails(core.parse_cookies, table.concat(many, "; "), { max_length = 1e6 },
    "too_many_fields", "256", "default fields")
  lu.assertErrorMsgContains("parse_cookies: unknown option 'plus_as_space'",
    core.parse_cookies, "a=1", { plus_as_space = true })
end

return {
  TestUrlCodec = TestUrlCodec,
  TestFormEncode = TestFormEncode,
  TestParseQuery = TestParseQuery,
  TestParseForm = TestParseForm,
  TestParseCookies = TestParseCookies,
}
