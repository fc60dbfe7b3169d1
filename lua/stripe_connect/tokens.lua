-- stripe_connect.tokens — the connected accounts' tokens encrypted at rest.
--
--   keyring(spec)            -> keyring | nil, message   spec: TOKEN_KEYS,
--                               "kid:base64key[,kid:base64key…]" (32-byte keys,
--                               standard base64); the first encrypts, all decrypt
--   new_key()                -> a fresh "kid:base64key" entry (kid k<unix time>)
--   seal(kr, plaintext, aad) -> "v1:kid:base64(iv | ciphertext | tag)"
--   open(kr, stored, aad)    -> plaintext, kid | nil, message
--                               (a value without the "v1:" prefix is a plaintext
--                               row from before encryption: answered as is, kid nil)
--   aad(id, field)           -> "<account id>\0<field>"
--   wrap(store, kr, log)     -> a store whose accounts' access_token and
--                               refresh_token are sealed on put_account and
--                               opened on every read
--
-- AES-256-GCM through OpenSSL (core.aead_seal / aead_open), a fresh 96-bit
-- IV per value, the associated data "<account id>\0<field>", so a value
-- copied to another account or into the other token field fails to open.
-- A value that does not open (a key no longer in TOKEN_KEYS, a changed
-- byte) reads as no token, with `token_error` on the account and a log line
-- naming the account and the key id, never a value.
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local M = {}

M.VERSION = "v1"
M.FIELDS = { "access_token", "refresh_token" }

function M.keyring(spec)
  if type(spec) ~= "string" then return nil, "no keys given" end
  local kr = { keys = {}, by_kid = {} }
  for item in (spec .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then
      local kid, b64 = item:match("^([%w_-]+):(%S+)$")
      if not kid or #kid > 16 then return nil, "entry " .. (#kr.keys + 1) .. " is not kid:base64key" end
      local key = core.base64_decode(b64)
      if not key or #key ~= 32 then
        return nil, "key '" .. kid .. "' must be 32 bytes in standard base64 (44 characters)"
      end
      if kr.by_kid[kid] then return nil, "key id '" .. kid .. "' appears twice" end
      local k = { kid = kid, key = key, text = b64 }
      kr.keys[#kr.keys + 1], kr.by_kid[kid] = k, k
    end
  end
  if #kr.keys == 0 then return nil, "no keys given" end
  return kr
end

function M.new_key(kid)
  return (kid or ("k" .. os.time())) .. ":" .. core.base64_encode(core.random_bytes(32))
end

function M.seal(kr, plaintext, aad)
  local k = kr.keys[1]
  return M.VERSION .. ":" .. k.kid .. ":" .. core.base64_encode(core.aead_seal(k.key, plaintext, aad))
end

function M.open(kr, stored, aad)
  if type(stored) ~= "string" then return nil, "not a string" end
  if stored:sub(1, 3) ~= M.VERSION .. ":" then return stored, nil end -- a plaintext row (migration)
  local kid, b64 = stored:match("^v1:([%w_-]+):([%w+/=]+)$")
  if not kid then return nil, "malformed sealed value" end
  local k = kr.by_kid[kid]
  if not k then return nil, "key '" .. kid .. "' is not in TOKEN_KEYS" end
  local sealed = core.base64_decode(b64)
  local plain = sealed and core.aead_open(k.key, sealed, aad)
  if not plain then return nil, "the value does not open under key '" .. kid .. "' for this account" end
  return plain, kid
end

-- kid_of(stored) -> the key id a stored value is sealed under, or nil (plaintext).
function M.kid_of(stored)
  return type(stored) == "string" and stored:match("^v1:([%w_-]+):") or nil
end

-- aad(id, field) -> the associated data of one token of one account.
function M.aad(id, field) return id .. "\0" .. field end
local aad = M.aad

function M.wrap(store, kr, log)
  log = log or util.stderr_log
  local w = setmetatable({ inner = store, token_keys = kr }, { __index = store })

  local function opened(a)
    if type(a) ~= "table" then return a end
    for _, f in ipairs(M.FIELDS) do
      if a[f] ~= nil then
        local plain, err = M.open(kr, a[f], aad(a.id, f))
        if not plain then
          log("tokens: the " .. f .. " of " .. tostring(a.id) .. " cannot be read: " .. err)
          a.token_error = err
        end
        a[f] = plain
      end
    end
    return a
  end
  local function opened_list(list, err)
    if not list then return nil, err end
    for _, a in ipairs(list) do opened(a) end
    return list
  end

  function w:put_account(a)
    local sealed = {}
    for k, v in pairs(a) do sealed[k] = v end
    sealed.token_error = nil
    for _, f in ipairs(M.FIELDS) do
      if type(a[f]) == "string" then sealed[f] = M.seal(kr, a[f], aad(a.id, f)) end
    end
    return store:put_account(sealed)
  end
  function w:get_account(id)
    local a, err = store:get_account(id)
    if not a then return nil, err end
    return opened(a)
  end
  function w:list_accounts() return opened_list(store:list_accounts()) end
  function w:close() return store:close() end
  if store.accounts_of then
    function w:accounts_of(owner) return opened_list(store:accounts_of(owner)) end
  end
  return w
end

return M
