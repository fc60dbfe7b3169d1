-- Tokens at rest (issue 13, deliver 1): stripe_connect.tokens — AES-256-GCM
-- through the core (aead_seal/aead_open), the TOKEN_KEYS keyring, the
-- versioned stored form, plaintext rows from before encryption, and the
-- store wrapper over the memory and SQLite stores: the stored columns hold
-- no plaintext token, and a value moved to another account or field, or
-- read without its key, opens to nothing.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local tokens = require "stripe_connect.tokens"
local config = require "stripe_connect.config"
local store_mod = require "stripe_connect.store"
local files = require "support.files"

local K1 = "k1:" .. core.base64_encode(("1"):rep(32))
local K2 = "k2:" .. core.base64_encode(("2"):rep(32))

local TestTokens = {}

function TestTokens.test_round_trip_and_stored_form()
  local kr = assert(tokens.keyring(K1))
  for _, plain in ipairs({ "sk_test_abc", "rt_" .. ("x"):rep(200), "", "with\0nul" }) do
    local sealed = tokens.seal(kr, plain, "acct_1\0access_token")
    lu.assertStrMatches(sealed, "v1:k1:[%w+/]+=*")
    lu.assertNotStrContains(sealed, plain == "" and "\1" or plain)
    lu.assertEquals((tokens.open(kr, sealed, "acct_1\0access_token")), plain)
    lu.assertNotEquals(tokens.seal(kr, plain, "acct_1\0access_token"), sealed, "a fresh IV each time")
  end
end

function TestTokens.test_wrong_aad_key_or_byte_fails()
  local kr = assert(tokens.keyring(K1))
  local sealed = tokens.seal(kr, "sk_test_secret", tokens.aad("acct_1", "access_token"))
  local rows = {
    { "another account", kr, sealed, tokens.aad("acct_2", "access_token") },
    { "the other field", kr, sealed, tokens.aad("acct_1", "refresh_token") },
    { "another key with the same kid", assert(tokens.keyring("k1:" .. core.base64_encode(("9"):rep(32)))), sealed,
      tokens.aad("acct_1", "access_token") },
    { "a kid not in the keyring", assert(tokens.keyring(K2)), sealed, tokens.aad("acct_1", "access_token") },
    { "a changed byte", kr, sealed:sub(1, -6) .. (sealed:sub(-5, -5) == "A" and "B" or "A") .. sealed:sub(-4),
      tokens.aad("acct_1", "access_token") },
    { "truncated", kr, sealed:sub(1, 20), tokens.aad("acct_1", "access_token") },
    { "not base64", kr, "v1:k1:!!!!", tokens.aad("acct_1", "access_token") },
  }
  for _, r in ipairs(rows) do
    local plain, err = tokens.open(r[2], r[3], r[4])
    lu.assertNil(plain, r[1])
    lu.assertIsString(err, r[1])
    lu.assertNotStrContains(err, "sk_test_secret", false, r[1])
  end
  -- the core's own check
  local k = core.random_bytes(32)
  lu.assertNil(core.aead_open(k, core.aead_seal(k, "x", "a"), "b"))
  lu.assertFalse(pcall(core.aead_seal, "short", "x", "a"))
end

function TestTokens.test_rotation_keyring_first_encrypts_all_decrypt()
  local old = assert(tokens.keyring(K1))
  local both = assert(tokens.keyring(K2 .. "," .. K1))
  local sealed_old = tokens.seal(old, "tok", "a")
  local plain, kid = tokens.open(both, sealed_old, "a")
  lu.assertEquals({ plain, kid }, { "tok", "k1" })
  lu.assertEquals(tokens.kid_of(tokens.seal(both, "tok", "a")), "k2")
end

function TestTokens.test_plaintext_rows_read_as_is()
  local kr = assert(tokens.keyring(K1))
  local plain, kid = tokens.open(kr, "sk_test_legacy_plain", "acct_1\0access_token")
  lu.assertEquals(plain, "sk_test_legacy_plain")
  lu.assertNil(kid)
  lu.assertNil(tokens.kid_of("sk_test_legacy_plain"))
end

function TestTokens.test_keyring_problems()
  local rows = {
    { "empty", "" }, { "no kid", core.base64_encode(("1"):rep(32)) },
    { "short key", "k1:" .. core.base64_encode(("1"):rep(16)) },
    { "base64url, not base64", "k1:" .. core.base64url_encode(("\255"):rep(32)) },
    { "duplicate kid", K1 .. "," .. K1 },
    { "long kid", ("k"):rep(17) .. ":" .. core.base64_encode(("1"):rep(32)) },
  }
  for _, r in ipairs(rows) do
    local kr, err = tokens.keyring(r[2])
    lu.assertNil(kr, r[1])
    lu.assertIsString(err, r[1])
    lu.assertNotStrContains(err, core.base64_encode(("1"):rep(32)), false, r[1] .. ": no key in the message")
  end
  lu.assertEquals(#assert(tokens.keyring(" " .. K1 .. " , " .. K2 .. " ")).keys, 2)
  lu.assertNotNil(tokens.keyring(tokens.new_key()))
end

local function stores()
  local dir = files.tmpdir()
  return {
    { "memory", assert(store_mod.open("memory:")) },
    { "sqlite", assert(store_mod.open("sqlite:" .. dir .. "/t.db")) },
  }, dir
end

function TestTokens.test_wrapped_store_holds_no_plaintext_token()
  local list, dir = stores()
  for _, row in ipairs(list) do
    local name, inner = row[1], row[2]
    local logs = {}
    local s = tokens.wrap(inner, assert(tokens.keyring(K1)), function(m) logs[#logs + 1] = m end)
    assert(store_mod.check(s))
    assert(s:put_account{ id = "acct_1", status = "connected", access_token = "sk_test_AT_plain",
      refresh_token = "rt_RT_plain", scope = "read_write" })
    local raw = assert(inner:get_account("acct_1"))
    lu.assertStrMatches(raw.access_token, "v1:k1:.+", nil, nil, name)
    lu.assertStrMatches(raw.refresh_token, "v1:k1:.+", nil, nil, name)
    local dump = assert(inner:run{ { "SELECT * FROM accounts" } })[1][1]
    for col, v in pairs(dump) do
      lu.assertNotStrContains(tostring(v), "AT_plain", false, name .. " column " .. col)
      lu.assertNotStrContains(tostring(v), "RT_plain", false, name .. " column " .. col)
    end
    local a = assert(s:get_account("acct_1"))
    lu.assertEquals({ a.access_token, a.refresh_token }, { "sk_test_AT_plain", "rt_RT_plain" }, name)
    lu.assertEquals(s:list_accounts()[1].refresh_token, "rt_RT_plain", name)
    -- a row copied onto another account id does not open there
    raw.id = "acct_2"
    assert(inner:put_account(raw))
    local b = assert(s:get_account("acct_2"))
    lu.assertNil(b.access_token, name)
    lu.assertNil(b.refresh_token, name)
    lu.assertIsString(b.token_error, name)
    lu.assertStrContains(logs[1], "acct_2", false, name)
    lu.assertNotStrContains(table.concat(logs, "\n"), "v1:k1:", false, name .. ": no values in the log")
    -- a plaintext row from before encryption is read, and sealed on its next write
    assert(inner:put_account{ id = "acct_3", status = "connected", access_token = "sk_test_old", refresh_token = "rt_old" })
    local c = assert(s:get_account("acct_3"))
    lu.assertEquals(c.access_token, "sk_test_old", name)
    assert(s:put_account(c))
    lu.assertStrMatches(assert(inner:get_account("acct_3")).access_token, "v1:k1:.+", nil, nil, name)
    lu.assertNil(assert(inner:get_account("acct_3")).token_error, name)
    -- disconnect wipes them as before
    assert(s:mark_disconnected("acct_1", "admin"))
    lu.assertNil(assert(inner:get_account("acct_1")).access_token, name)
    s:close()
  end
  files.rmdir(dir)
end

function TestTokens.test_production_refuses_to_start_without_token_keys()
  local base = { STRIPE_CLIENT_ID = "ca_abc", PUBLIC_URL = "https://p.example", STATE_SECRETS = "k1:" .. ("x"):rep(32) }
  local function env(over)
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    for k, v in pairs(over) do t[k] = v end
    return function(n) return t[n] end
  end
  for _, key in ipairs({ "sk_live_abc", "rk_live_abc" }) do
    local c, problems = config.load(env({ STRIPE_SECRET_KEY = key }))
    lu.assertNil(c, key)
    lu.assertStrContains(config.format_problems(problems), "TOKEN_KEYS is not set", false, key)
    lu.assertNotNil(config.load(env({ STRIPE_SECRET_KEY = key, TOKEN_KEYS = K1 })), key .. " with a key")
  end
  -- test mode: allowed (plaintext, warned by cli.from_env)
  lu.assertNil(assert(config.load(env({ STRIPE_SECRET_KEY = "sk_test_abc" }))).token_keys)
  -- a bad value is refused, never echoed
  local c, problems = config.load(env({ STRIPE_SECRET_KEY = "sk_test_abc", TOKEN_KEYS = "k1:" .. core.base64_encode("short") }))
  lu.assertNil(c)
  local text = config.format_problems(problems)
  lu.assertStrContains(text, "TOKEN_KEYS is invalid")
  lu.assertNotStrContains(text, core.base64_encode("short"))
  -- the keys are among the values the logs redact
  local ok = assert(config.load(env({ STRIPE_SECRET_KEY = "sk_test_abc", TOKEN_KEYS = K1 })))
  local secrets = table.concat(config.secret_values(ok), " ")
  lu.assertStrContains(secrets, K1:sub(4))
end

return { TestTokens = TestTokens }
