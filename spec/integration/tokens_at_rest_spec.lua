-- Tokens at rest end to end (issue 13, deliver 1): the platform (real host,
-- fake Connect, SQLite) stores each account's access and refresh tokens
-- sealed under TOKEN_KEYS' first key; the SQLite file holds no plaintext
-- token; refresh works through the sealed refresh token; a plaintext row
-- from before encryption is read and migrated by scripts/rotate_keys.lua,
-- which re-encrypts every row under a new first key, after which the old
-- key can go.
local lu = require "luaunit"
local core = require "stripe_connect.core"
local tokens = require "stripe_connect.tokens"
local http = require "support.http"
local platform = require "support.platform"
local files = require "support.files"
local store_mod = require "stripe_connect.store"

local T2 = "t2:" .. core.base64_encode(("n"):rep(32))

local TestTokensAtRest = {}

local function raw_account(p, id)
  local s = assert(store_mod.open(p.env.DATABASE))
  local a = s:get_account(id)
  s:close()
  return a
end

local function file_bytes(p)
  local path = p.env.DATABASE:match("^sqlite:(.+)$")
  return (files.read(path) or "") .. (files.read(path .. "-wal") or "")
end

function TestTokensAtRest.test_sealed_tokens_refresh_and_rotation()
  local p = platform.start{}
  local ok, err = pcall(function()
    lu.assertEquals(p:connect(http.browser(), { account = "acct_rest1" }).status, 303)
    local raw = raw_account(p, "acct_rest1")
    lu.assertStrMatches(raw.access_token, "v1:t1:.+")
    lu.assertStrMatches(raw.refresh_token, "v1:t1:.+")
    local kr = assert(tokens.keyring(platform.TOKEN_KEYS))
    local access = assert(tokens.open(kr, raw.access_token, tokens.aad("acct_rest1", "access_token")))
    local refresh = assert(tokens.open(kr, raw.refresh_token, tokens.aad("acct_rest1", "refresh_token")))
    lu.assertStrMatches(access, "sk_test_.+")
    lu.assertStrMatches(refresh, "rt_.+")
    local bytes = file_bytes(p)
    lu.assertNotStrContains(bytes, access, false, "no plaintext access token in the database files")
    lu.assertNotStrContains(bytes, refresh, false, "no plaintext refresh token in the database files")
    -- refresh goes through the sealed refresh token; the new ones are sealed too
    local status = p:admin("POST", "/admin/accounts/acct_rest1/refresh")
    lu.assertEquals(status, 200)
    local after = raw_account(p, "acct_rest1")
    lu.assertStrMatches(after.access_token, "v1:t1:.+")
    lu.assertNotEquals(after.access_token, raw.access_token)

    -- a plaintext row from before encryption
    local s = assert(store_mod.open(p.env.DATABASE))
    assert(s:put_account{ id = "acct_legacy", status = "connected", access_token = "sk_test_legacy_plain",
      refresh_token = "rt_legacy_plain", connected_at = os.time() })
    assert(s:put_account{ id = "acct_notoken", status = "disconnected", connected_at = os.time() })
    s:close()

    -- rotation: the new key first, the old one still there
    p.env.TOKEN_KEYS = T2 .. "," .. platform.TOKEN_KEYS
    local code, out = p:script("rotate_keys")
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "rotate_keys: 2 re-encrypted under t2, 1 already current, 0 unreadable")
    lu.assertNotStrContains(out, "legacy_plain")
    for _, id in ipairs({ "acct_rest1", "acct_legacy" }) do
      lu.assertStrMatches(raw_account(p, id).access_token, "v1:t2:.+", nil, nil, id)
      lu.assertStrMatches(raw_account(p, id).refresh_token, "v1:t2:.+", nil, nil, id)
    end
    -- the old plaintext may linger in free space and old WAL frames until a VACUUM (doc/reference.md: Tokens at rest)
    local path = p.env.DATABASE:match("^sqlite:(.+)$")
    assert(os.execute("sqlite3 '" .. path .. "' 'PRAGMA wal_checkpoint(TRUNCATE); VACUUM; " ..
      "PRAGMA wal_checkpoint(TRUNCATE);' > /dev/null"))
    lu.assertNil(file_bytes(p):find("legacy_plain", 1, true), "no plaintext left in the database files")
    -- a second run has nothing to do
    code, out = p:script("rotate_keys")
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "0 re-encrypted under t2, 3 already current")

    -- the old key dropped: the platform still refreshes with the new one alone
    p.env.TOKEN_KEYS = T2
    p:restart()
    lu.assertEquals((p:admin("POST", "/admin/accounts/acct_rest1/refresh")), 200)
    lu.assertStrMatches(raw_account(p, "acct_rest1").access_token, "v1:t2:.+")

    -- a key missing from TOKEN_KEYS: rotate reports the account, changes nothing, exit 1
    p.env.TOKEN_KEYS = "t3:" .. core.base64_encode(("z"):rep(32))
    local before = raw_account(p, "acct_legacy").access_token
    code, out = p:script("rotate_keys")
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "acct_legacy: key 't2' is not in TOKEN_KEYS; left as it is")
    lu.assertEquals(raw_account(p, "acct_legacy").access_token, before)

    -- without TOKEN_KEYS: a usage problem
    p.env.TOKEN_KEYS = nil
    code, out = p:script("rotate_keys")
    lu.assertEquals(code, 2, out)
    lu.assertStrContains(out, "TOKEN_KEYS is not set")
  end)
  p:stop()
  if not ok then error(err, 0) end
end

return { TestTokensAtRest = TestTokensAtRest }
