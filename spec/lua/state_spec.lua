-- stripe_connect.state: mint/verify rows (tampering of every field, key
-- rotation, expiry, browser binding, malformed and huge input), keyring
-- parsing, cookies.
local lu = require "luaunit"
local state = require "stripe_connect.state"

local S1 = ("a"):rep(32)
local S2 = ("b"):rep(40)
local NOW = 1700000000

local function kr(spec) return assert(state.keyring(spec)) end

-- Replace field i (1-based, of the 7 dot-separated fields) of a token.
local function with_field(token, i, value)
  local f = {}
  for part in (token .. "."):gmatch("([^.]*)%.") do f[#f + 1] = part end
  f[i] = value
  return table.concat(f, ".")
end

local function flip_last(s)
  local c = s:sub(-1)
  return s:sub(1, -2) .. (c == "A" and "B" or "A")
end

local TestState = {}

function TestState.test_verify_rows()
  local B = state.new_binding()
  local other = state.new_binding()
  local keys = kr("k1:" .. S1)
  local token = state.mint(keys, { binding = B, return_to = "/after", now = NOW })
  local rows = {
    -- name, keyring, token, verify opts, want code (nil = ok)
    { "good", keys, token, { binding = B, now = NOW + 10 }, nil },
    { "good at ttl-1", keys, token, { binding = B, now = NOW + 1799 }, nil },
    { "expired at ttl", keys, token, { binding = B, now = NOW + 1800 }, "expired" },
    { "short ttl expired", keys, token, { binding = B, ttl = 5, now = NOW + 6 }, "expired" },
    { "issued in the future", keys, token, { binding = B, now = NOW - 3600 }, "malformed" },
    { "other browser", keys, token, { binding = other, now = NOW }, "other_browser" },
    { "garbage cookie", keys, token, { binding = "x", now = NOW }, "other_browser" },
    { "no cookie", keys, token, { now = NOW }, "no_binding" },
    { "missing", keys, nil, { binding = B, now = NOW }, "missing" },
    { "empty", keys, "", { binding = B, now = NOW }, "missing" },
    { "tampered version", keys, with_field(token, 1, "v2"), { binding = B, now = NOW }, "malformed" },
    { "tampered kid", keys, with_field(token, 2, "k2"), { binding = B, now = NOW }, "unknown_key" },
    { "tampered nonce", keys, with_field(token, 3, flip_last(select(2, token:match("^(v1%.k1%.)([^.]+)")))),
      { binding = B, now = NOW }, "bad_signature" },
    { "tampered iat", keys, with_field(token, 4, tostring(NOW + 1)), { binding = B, now = NOW }, "bad_signature" },
    { "tampered bind", keys, with_field(token, 5, "AAAAAAAAAAAAAAAAAAAAAA"), { binding = B, now = NOW }, "bad_signature" },
    { "tampered return path", keys, with_field(token, 6, "Ly9ldmls"), { binding = B, now = NOW }, "bad_signature" },
    { "tampered mac", keys, flip_last(token), { binding = B, now = NOW }, "bad_signature" },
    { "mac removed", keys, with_field(token, 7, ""), { binding = B, now = NOW }, "bad_signature" },
    { "wrong key id", kr("k9:" .. S1), token, { binding = B, now = NOW }, "unknown_key" },
    { "same kid other secret", kr("k1:" .. S2), token, { binding = B, now = NOW }, "bad_signature" },
    { "rotated: old key still verifies", kr("k2:" .. S2 .. ",k1:" .. S1), token, { binding = B, now = NOW }, nil },
    { "too few fields", keys, "v1.k1.abc", { binding = B, now = NOW }, "malformed" },
    { "too many fields", keys, token .. ".x", { binding = B, now = NOW }, "malformed" },
    { "malformed base64 nonce", keys, with_field(token, 3, "!!!!!!!!!!!!!!!!!!!!!!"), { binding = B, now = NOW }, "malformed" },
    { "non-digit iat", keys, with_field(token, 4, "12a"), { binding = B, now = NOW }, "malformed" },
    { "huge input", keys, token .. ("A"):rep(1024 * 1024), { binding = B, now = NOW }, "malformed" },
    { "binary junk", keys, "\0\1\2\255", { binding = B, now = NOW }, "malformed" },
  }
  for _, row in ipairs(rows) do
    local name, keyring, tok, opts, want = row[1], row[2], row[3], row[4], row[5]
    local claims, msg, code = state.verify(keyring, tok, opts)
    if want == nil then
      lu.assertNotNil(claims, name .. ": " .. tostring(code) .. " " .. tostring(msg))
      lu.assertEquals(claims.return_to, "/after", name)
      lu.assertEquals(claims.issued_at, NOW, name)
      lu.assertEquals(claims.kid, "k1", name)
    else
      lu.assertNil(claims, name)
      lu.assertEquals(code, want, name)
      lu.assertIsString(msg, name)
    end
  end
end

function TestState.test_mac_valid_but_bad_return_path_base64()
  -- A token whose MAC is right but whose rt field does not decode is still refused.
  local B = state.new_binding()
  local keys = kr("k1:" .. S1)
  local token, claims = state.mint(keys, { binding = B, now = NOW })
  lu.assertNil(claims.return_to)
  local ok = state.verify(keys, token, { binding = B, now = NOW })
  lu.assertNotNil(ok)
  lu.assertNil(ok.return_to)
  lu.assertEquals(ok.expires_at, NOW + 1800)
end

function TestState.test_nonces_are_unique_and_128_bits()
  local B = state.new_binding()
  local keys = kr("k1:" .. S1)
  local seen = {}
  for _ = 1, 200 do
    local _, c = state.mint(keys, { binding = B })
    lu.assertEquals(#c.nonce, 22) -- 16 bytes
    lu.assertNil(seen[c.nonce])
    seen[c.nonce] = true
  end
end

function TestState.test_tabs_share_one_binding()
  -- Many states for one browser all verify with the same single cookie.
  local B = state.new_binding()
  local keys = kr("k1:" .. S1)
  local tokens = {}
  for i = 1, 5 do tokens[i] = state.mint(keys, { binding = B, now = NOW }) end
  for i = 5, 1, -1 do
    lu.assertNotNil(state.verify(keys, tokens[i], { binding = B, now = NOW }), "tab " .. i)
  end
end

function TestState.test_keyring_rows()
  local rows = {
    { "one key", "k1:" .. S1, nil },
    { "two keys, spaces", " k1:" .. S1 .. " , k0:" .. S2 .. " ", nil },
    { "secret with colon", "k1:" .. S1 .. ":x", nil },
    { "empty", "", "no keys" },
    { "no colon", S1, "kid:secret" },
    { "short secret", "k1:short", "at least 32 bytes" },
    { "bad kid", "k.1:" .. S1, "key id" },
    { "long kid", ("k"):rep(17) .. ":" .. S1, "key id" },
    { "duplicate kid", "k1:" .. S1 .. ",k1:" .. S2, "twice" },
  }
  for _, row in ipairs(rows) do
    local keys, msg = state.keyring(row[2])
    if row[3] == nil then
      lu.assertNotNil(keys, row[1] .. ": " .. tostring(msg))
      lu.assertEquals(keys.keys[1].kid, "k1", row[1])
    else
      lu.assertNil(keys, row[1])
      lu.assertStrContains(msg, row[3], false, row[1])
      lu.assertNotStrContains(msg, S1, false, row[1])
    end
  end
  local keys = kr("new:" .. S2 .. ",old:" .. S1)
  local _, claims = state.mint(keys, { binding = state.new_binding() })
  lu.assertEquals(claims.kid, "new")
end

function TestState.test_cookie()
  local B = state.new_binding()
  lu.assertTrue(state.valid_binding(B))
  lu.assertFalse(state.valid_binding(B .. "x"))
  lu.assertFalse(state.valid_binding(nil))
  lu.assertEquals(state.cookie_name(true), "__Host-sc_bind")
  lu.assertEquals(state.cookie_name(false), "sc_bind")
  local c = state.binding_cookie(B, { secure = true })
  lu.assertStrContains(c, "__Host-sc_bind=" .. B .. "; Path=/")
  lu.assertStrContains(c, "; HttpOnly")
  lu.assertStrContains(c, "; SameSite=Lax")
  lu.assertStrContains(c, "; Secure")
  local plain = state.binding_cookie(B, { secure = false })
  lu.assertStrContains(plain, "sc_bind=" .. B)
  lu.assertNotStrContains(plain, "Secure")
  lu.assertNotStrContains(plain, "__Host-")
end

function TestState.test_misuse_raises()
  local keys = kr("k1:" .. S1)
  lu.assertErrorMsgContains("unknown option", state.mint, keys, { binding = state.new_binding(), bogus = 1 })
  lu.assertErrorMsgContains("binding", state.mint, keys, {})
  lu.assertErrorMsgContains("return_to", state.mint, keys, { binding = state.new_binding(), return_to = "//x" })
  lu.assertErrorMsgContains("unknown option", state.verify, keys, "x", { bogus = 1 })
end

-- v2 tokens carry the platform user (owner) and an Account Links account,
-- under the MAC; v1 tokens still verify.
function TestState.test_owner_and_account()
  local B = state.new_binding()
  local keys = kr("k1:" .. S1)
  local token, minted = state.mint(keys, { binding = B, owner = "user:42 (ä)", account = "acct_1x", now = NOW })
  lu.assertStrMatches(token, "v2%..*")
  lu.assertEquals(minted.owner, "user:42 (ä)")
  local c = assert(state.verify(keys, token, { binding = B, now = NOW }))
  lu.assertEquals(c.owner, "user:42 (ä)")
  lu.assertEquals(c.account, "acct_1x")
  local only_owner = state.mint(keys, { binding = B, owner = "u1", now = NOW })
  c = assert(state.verify(keys, only_owner, { binding = B, now = NOW }))
  lu.assertEquals(c.owner, "u1")
  lu.assertNil(c.account)
  -- tampering with the owner or account breaks the MAC
  local core = require "stripe_connect.core"
  for i, value in pairs{ [7] = core.base64url_encode("user:43"), [8] = core.base64url_encode("acct_other") } do
    lu.assertEquals(select(3, state.verify(keys, with_field(token, i, value), { binding = B, now = NOW })),
      "bad_signature", "field " .. i)
  end
  -- an owner-less v1 token has neither
  c = assert(state.verify(keys, state.mint(keys, { binding = B, now = NOW }), { binding = B, now = NOW }))
  lu.assertNil(c.owner)
  lu.assertStrMatches(state.mint(keys, { binding = B, now = NOW }), "v1%..*")
  lu.assertErrorMsgContains("account", state.mint, keys, { binding = B, account = "bob" })
  lu.assertErrorMsgContains("owner", state.mint, keys, { binding = B, owner = "" })
end

return { TestState = TestState }
