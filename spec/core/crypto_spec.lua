-- C core crypto primitives: HMAC-SHA256 (RFC 4231), SHA-256, constant-time
-- equality, CSPRNG bytes, hex and base64url.  Runs under Lua 5.4 and LuaJIT.
local lu = require "luaunit"
local core = require "stripe_connect.core"

local function hex(s) return core.hex_encode(s) end
local function unhex(s) return assert(core.hex_decode(s)) end

local TestCrypto = {}

-- RFC 4231 §4.2–4.7 (case 5, truncated output, is checked on its prefix).
local rfc4231 = {
  { "case 1", unhex(("0b"):rep(20)), "Hi There",
    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
  { "case 2", "Jefe", "what do ya want for nothing?",
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
  { "case 3", unhex(("aa"):rep(20)), unhex(("dd"):rep(50)),
    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
  { "case 4", unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), unhex(("cd"):rep(50)),
    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
  { "case 5", unhex(("0c"):rep(20)), "Test With Truncation",
    "a3b6167473100ee06e0c796c2955552b" },
  { "case 6", unhex(("aa"):rep(131)), "Test Using Larger Than Block-Size Key - Hash Key First",
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
  { "case 7", unhex(("aa"):rep(131)),
    "This is a test using a larger than block-size key and a larger than block-size data. " ..
    "The key needs to be hashed before being used by the HMAC algorithm.",
    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
}

function TestCrypto.test_hmac_sha256_rfc4231()
  for _, row in ipairs(rfc4231) do
    local name, key, data, want = row[1], row[2], row[3], row[4]
    local got = hex(core.hmac_sha256(key, data))
    lu.assertEquals(got:sub(1, #want), want, name)
    lu.assertEquals(#got, 64, name)
  end
end

function TestCrypto.test_hmac_sha256_empty_key_and_message()
  lu.assertEquals(hex(core.hmac_sha256("", "")),
    "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
end

function TestCrypto.test_hmac_sha256_stripe_webhook_vector()
  -- doc/PROTOCOL.md §5 V3
  lu.assertEquals(hex(core.hmac_sha256("whsec_test_secret", '1700000000.{"id":"evt_1","object":"event"}')),
    "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd")
end

function TestCrypto.test_sha256()
  lu.assertEquals(hex(core.sha256("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  lu.assertEquals(hex(core.sha256("")),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
end

function TestCrypto.test_hmac_rejects_non_strings()
  lu.assertErrorMsgContains("bad argument #1", core.hmac_sha256, nil, "x")
  lu.assertErrorMsgContains("bad argument #2", core.hmac_sha256, "k", {})
end

function TestCrypto.test_equal()
  local rows = {
    { "same", "abc", "abc", true },
    { "different", "abc", "abd", false },
    { "prefix", "abc", "abcd", false },
    { "both empty", "", "", true },
    { "one empty", "", "a", false },
    { "binary", "\0\1\2", "\0\1\2", true },
    { "binary differs", "\0\1\2", "\0\1\3", false },
  }
  for _, r in ipairs(rows) do lu.assertEquals(core.equal(r[2], r[3]), r[4], r[1]) end
end

function TestCrypto.test_random_bytes()
  local a, b = core.random_bytes(16), core.random_bytes(16)
  lu.assertEquals(#a, 16)
  lu.assertNotEquals(a, b)
  lu.assertEquals(#core.random_bytes(4096), 4096)
  lu.assertErrorMsgContains("1 to 4096", core.random_bytes, 0)
  lu.assertErrorMsgContains("1 to 4096", core.random_bytes, 4097)
  lu.assertErrorMsgContains("1 to 4096", core.random_bytes, 1.5)
  lu.assertErrorMsgContains("bad argument #1", core.random_bytes, "x")
end

-- A NaN or huge count used to be cast to int before the range check
-- (undefined behaviour in C; UBSan reports it); now it is plain misuse.
function TestCrypto.test_random_bytes_nan_and_huge_are_misuse_not_ub()
  for _, n in ipairs{ 0 / 0, 1 / 0, -1 / 0, 2 ^ 40, -(2 ^ 40) } do
    lu.assertErrorMsgContains("1 to 4096", core.random_bytes, n)
  end
end

function TestCrypto.test_hex_round_trip_and_rejects()
  lu.assertEquals(core.hex_encode("\0\255\16abc"), "00ff10616263")
  lu.assertEquals(core.hex_decode("00FF10616263"), "\0\255\16abc")
  lu.assertEquals(core.hex_decode(""), "")
  local rows = {
    { "odd length", "abc", "odd length" },
    { "bad char", "zz", "invalid character at position 1" },
    { "bad second char", "0g", "invalid character at position 2" },
  }
  for _, r in ipairs(rows) do
    local v, err = core.hex_decode(r[2])
    lu.assertNil(v, r[1])
    lu.assertStrContains(err, r[3], false, r[1])
  end
end

function TestCrypto.test_base64url_vectors()
  -- RFC 4648 §10 vectors, unpadded, in the url-safe alphabet.
  local rows = {
    { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
    { "\251\255\191", "-_-_" }, { "\255\254", "__4" },
  }
  for _, r in ipairs(rows) do
    lu.assertEquals(core.base64url_encode(r[1]), r[2], r[2])
    lu.assertEquals(core.base64url_decode(r[2]), r[1], r[2])
  end
end

function TestCrypto.test_base64url_round_trip_random()
  for n = 0, 64 do
    local s = n > 0 and core.random_bytes(n) or ""
    lu.assertEquals(core.base64url_decode(core.base64url_encode(s)), s)
  end
end

function TestCrypto.test_base64url_rejects()
  local rows = {
    { "standard alphabet +", "ab+c", "invalid character" },
    { "standard alphabet /", "ab/c", "invalid character" },
    { "padding", "Zg==", "invalid character" },
    { "whitespace", "Zm9v Yg", "invalid character" },
    { "length 1 mod 4", "Zm9vY", "invalid length" },
    { "non-canonical bits", "Zh", "non-canonical" },
  }
  for _, r in ipairs(rows) do
    local v, err = core.base64url_decode(r[2])
    lu.assertNil(v, r[1])
    lu.assertStrContains(err, r[3], false, r[1])
  end
end

function TestCrypto.test_base64_vectors()
  -- RFC 4648 §10 vectors, padded, standard alphabet; and an HTTP Basic pair.
  local rows = {
    { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    { "\251\255\191", "+/+/" }, { "\255\254", "//4=" },
    { "sk_test_123:", "c2tfdGVzdF8xMjM6" },
  }
  for _, r in ipairs(rows) do
    lu.assertEquals(core.base64_encode(r[1]), r[2], r[2])
    lu.assertEquals(core.base64_decode(r[2]), r[1], r[2])
  end
  for n = 0, 64 do
    local s = n > 0 and core.random_bytes(n) or ""
    lu.assertEquals(core.base64_decode(core.base64_encode(s)), s)
  end
end

function TestCrypto.test_base64_rejects()
  local rows = {
    { "url alphabet -", "ab-c", "invalid character" },
    { "url alphabet _", "ab_c", "invalid character" },
    { "unpadded", "Zg", "invalid length" },
    { "padding inside", "Zg==Zm8=", "invalid character" },
    { "three pads", "Z===", "invalid character" },
    { "whitespace", "Zm9v Yg==", "invalid length" },
    { "non-canonical bits", "Zh==", "non-canonical" },
  }
  for _, r in ipairs(rows) do
    local v, err = core.base64_decode(r[2])
    lu.assertNil(v, r[1])
    lu.assertStrContains(err, r[3], false, r[1])
  end
end

return { TestCrypto = TestCrypto }
