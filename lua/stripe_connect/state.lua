-- stripe_connect.state — the OAuth `state` parameter: mint and verify
-- HMAC-SHA256-signed, expiring, key-rotatable tokens bound to one browser.
--
-- Token (ASCII, URL-safe, ~110 bytes + the return path):
--
--     v1.<kid>.<nonce>.<iat>.<bind>.<rt>.<mac>
--
--   kid    key id from STATE_SECRETS ([A-Za-z0-9_-]{1,16})
--   nonce  16 CSPRNG bytes, base64url: the one-time id the store consumes
--   iat    issued-at, decimal Unix seconds; expiry is iat + ttl at verify time
--   bind   first 16 bytes of HMAC(secret, "bind\0" .. binding cookie), base64url
--   rt     the allow-listed return path, base64url ("" when none)
--   mac    HMAC(secret, "state\0" .. everything before ".<mac>"), base64url
--
-- Browser binding: one long-lived random cookie (`__Host-sc_bind` on https,
-- `sc_bind` otherwise) per browser; every state minted for that browser
-- carries a MAC of it, so any number of tabs share one cookie and nothing
-- piles up.  A state presented with another browser's cookie (or none) fails
-- with `other_browser` / `no_binding`.
--
-- Key rotation: the first key of the keyring mints, every key verifies.
--
-- A state that carries the platform user (`owner`, policy hook) or an
-- Account Links account id is a v2 token: the v1 fields, then
-- `.<owner>.<account>` (each base64url, "" when none), then the mac.
-- v1 tokens (no owner, no account) still verify.
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local M = {}

M.VERSION = "v1"
M.DEFAULT_TTL = 1800
M.MIN_SECRET_BYTES = 32
M.MAX_TOKEN_BYTES = 4096
M.BINDING_MAX_AGE = 30 * 24 * 3600
local CLOCK_SKEW = 300 -- seconds a token's iat may lie in the future

local b64e, b64d = core.base64url_encode, core.base64url_decode

-- keyring(spec) -> keyring | nil, message
-- spec: "kid:secret,kid2:secret2" (STATE_SECRETS) or a list of
-- { kid = , secret = }.  Each secret must be at least 32 bytes; key ids are
-- 1–16 of [A-Za-z0-9_-] and unique.  Messages never contain a secret.
function M.keyring(spec)
  local entries = {}
  if type(spec) == "string" then
    for _, item in ipairs(util.split_list(spec)) do
      local kid, secret = item:match("^([^:]*):(.*)$")
      if not kid then
        return nil, "each entry must be kid:secret (entry " .. (#entries + 1) .. " has no ':')"
      end
      entries[#entries + 1] = { kid = kid, secret = secret }
    end
  elseif type(spec) == "table" then
    for i, e in ipairs(spec) do
      if type(e) ~= "table" then error("state.keyring: entry " .. i .. " must be a table", 2) end
      entries[#entries + 1] = { kid = e.kid, secret = e.secret }
    end
  else
    error("state.keyring: spec must be a string or a list", 2)
  end
  if #entries == 0 then return nil, "no keys given" end
  local kr = { keys = {}, by_kid = {} }
  for i, e in ipairs(entries) do
    if type(e.kid) ~= "string" or not e.kid:match("^[A-Za-z0-9_-]+$") or #e.kid > 16 then
      return nil, "key " .. i .. ": the key id must be 1-16 of A-Z a-z 0-9 _ -"
    end
    if kr.by_kid[e.kid] then
      return nil, "key id '" .. e.kid .. "' appears twice"
    end
    if type(e.secret) ~= "string" or #e.secret < M.MIN_SECRET_BYTES then
      return nil, "key '" .. e.kid .. "': the secret must be at least " .. M.MIN_SECRET_BYTES .. " bytes"
    end
    kr.keys[i] = { kid = e.kid, secret = e.secret }
    kr.by_kid[e.kid] = kr.keys[i]
  end
  return kr
end

-- new_secret() -> a fresh 32-byte secret as 43 base64url characters.
function M.new_secret()
  return b64e(core.random_bytes(32))
end

-- new_binding() -> a fresh browser-binding cookie value (24 random bytes,
-- 32 base64url characters).
function M.new_binding()
  return b64e(core.random_bytes(24))
end

-- valid_binding(v) -> true when v looks like a value new_binding() made.
function M.valid_binding(v)
  return type(v) == "string" and #v == 32 and v:match("^[A-Za-z0-9_-]+$") ~= nil
end

-- cookie_name(secure) -> "__Host-sc_bind" (https) or "sc_bind".
function M.cookie_name(secure)
  return secure and "__Host-sc_bind" or "sc_bind"
end

-- binding_cookie(value, opts) -> a Set-Cookie header value.
-- opts.secure (https: Secure + __Host- prefix), opts.max_age (seconds).
local cookie_tails = {} -- "<secure>:<max_age>" -> "; Path=/; Max-Age=…; …", made once each

function M.binding_cookie(value, opts)
  opts = util.check_opts(opts, { secure = true, max_age = true }, "state.binding_cookie")
  assert(M.valid_binding(value), "state.binding_cookie: not a binding value")
  local max_age = opts.max_age or M.BINDING_MAX_AGE
  local key = (opts.secure and "s:" or "p:") .. max_age
  local tail = cookie_tails[key]
  if not tail then
    tail = string.format("; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s", max_age, opts.secure and "; Secure" or "")
    cookie_tails[key] = tail
  end
  return M.cookie_name(opts.secure) .. "=" .. value .. tail
end

local function bind_tag(secret, binding)
  return b64e(core.hmac_sha256(secret, "bind\0" .. binding):sub(1, 16))
end

local function mac(secret, signed)
  return b64e(core.hmac_sha256(secret, "state\0" .. signed))
end

-- mint(keyring, opts) -> token, claims
-- opts.binding (required: the browser's binding cookie value),
-- opts.return_to (a local path, already allow-listed by the caller),
-- opts.now (Unix seconds, default os.time()).
-- claims = { kid, nonce, issued_at, return_to }.
function M.mint(kr, opts)
  opts = util.check_opts(opts, { binding = true, return_to = true, now = true, owner = true, account = true },
    "state.mint")
  assert(type(kr) == "table" and kr.keys and kr.keys[1], "state.mint: keyring expected")
  assert(M.valid_binding(opts.binding), "state.mint: opts.binding must be a binding value")
  local rt = opts.return_to
  assert(rt == nil or util.is_local_path(rt), "state.mint: return_to must be a local path")
  local key = kr.keys[1]
  local nonce = b64e(core.random_bytes(16))
  local iat = math.floor(opts.now or os.time())
  local owner, account = opts.owner, opts.account
  assert(owner == nil or (type(owner) == "string" and owner ~= "" and #owner <= 256),
    "state.mint: owner must be a non-empty string of at most 256 bytes")
  assert(account == nil or (type(account) == "string" and account:match("^acct_[%w_]+$")),
    "state.mint: account must be an acct_ id")
  local v2 = owner ~= nil or account ~= nil
  local signed = table.concat({ v2 and "v2" or M.VERSION, key.kid, nonce, string.format("%d", iat),
    bind_tag(key.secret, opts.binding), rt and b64e(rt) or "" }, ".")
  if v2 then signed = signed .. "." .. (owner and b64e(owner) or "") .. "." .. (account and b64e(account) or "") end
  return signed .. "." .. mac(key.secret, signed),
    { kid = key.kid, nonce = nonce, issued_at = iat, return_to = rt, owner = owner, account = account }
end

-- verify(keyring, token, opts) -> claims | nil, message, code
-- opts.binding (the request's binding cookie value, may be nil),
-- opts.ttl (seconds, default 1800), opts.now.
-- claims = { kid, nonce, issued_at, expires_at, return_to }.
-- code: "missing", "malformed", "unknown_key", "bad_signature", "expired",
-- "no_binding" (no binding cookie), "other_browser" (cookie of another browser).
function M.verify(kr, token, opts)
  opts = util.check_opts(opts, { binding = true, ttl = true, now = true }, "state.verify")
  assert(type(kr) == "table" and kr.by_kid, "state.verify: keyring expected")
  if token == nil or token == "" then return nil, "no state parameter", "missing" end
  if type(token) ~= "string" then return nil, "state is not a string", "malformed" end
  if #token > M.MAX_TOKEN_BYTES then return nil, "state is too long", "malformed" end
  local ver, kid, nonce, iat, bind, rt, sig =
    token:match("^([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)$")
  local owner_b64, account_b64
  if not ver then
    ver, kid, nonce, iat, bind, rt, owner_b64, account_b64, sig =
      token:match("^(v2)%.([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)%.([^.]*)$")
    if ver then ver = M.VERSION end
  end
  if not ver or ver ~= M.VERSION or not iat:match("^%d+$") or #iat > 12
      or not nonce:match("^[A-Za-z0-9_-]+$") or #nonce ~= 22 then
    return nil, "state is not a state token", "malformed"
  end
  local key = kr.by_kid[kid]
  if not key then return nil, "state was signed with an unknown key", "unknown_key" end
  local signed = token:sub(1, #token - #sig - 1)
  if not core.equal(mac(key.secret, signed), sig) then
    return nil, "state signature does not match", "bad_signature"
  end
  local now = math.floor(opts.now or os.time())
  local issued = tonumber(iat)
  local ttl = opts.ttl or M.DEFAULT_TTL
  if issued > now + CLOCK_SKEW then return nil, "state was issued in the future", "malformed" end
  if now >= issued + ttl then return nil, "state has expired", "expired" end
  if opts.binding == nil or opts.binding == "" then
    return nil, "this browser has no binding cookie", "no_binding"
  end
  if not M.valid_binding(opts.binding) or not core.equal(bind_tag(key.secret, opts.binding), bind) then
    return nil, "state was issued to another browser", "other_browser"
  end
  local return_to
  if rt ~= "" then
    return_to = b64d(rt)
    if not return_to or not util.is_local_path(return_to) then
      return nil, "state carries an invalid return path", "malformed"
    end
  end
  local owner, account
  if owner_b64 and owner_b64 ~= "" then owner = b64d(owner_b64) end
  if account_b64 and account_b64 ~= "" then account = b64d(account_b64) end
  if (owner_b64 and owner_b64 ~= "" and not owner) or
     (account and not account:match("^acct_[%w_]+$")) or (account_b64 and account_b64 ~= "" and not account) then
    return nil, "state carries an invalid owner or account", "malformed"
  end
  return { kid = kid, nonce = nonce, issued_at = issued, expires_at = issued + ttl, return_to = return_to,
    owner = owner, account = account }
end

return M
