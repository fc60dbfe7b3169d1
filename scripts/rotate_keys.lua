-- scripts/rotate_keys.lua — re-encrypt every account's tokens under the
-- newest key of TOKEN_KEYS (the first), with the platform's configuration
-- (environment, as for scripts/platform.lua).
--
--   TOKEN_KEYS=new:…,old:… stripe-connect run scripts/rotate_keys.lua
--
-- Rotation: put the new key first in TOKEN_KEYS (keep the old ones after
-- it), restart the platform, run this, then drop the old keys.  Plaintext
-- tokens from before encryption are encrypted the same way (migration).
-- Prints one line: how many accounts were re-encrypted, already current,
-- or could not be read (a key missing from TOKEN_KEYS: exit 1, nothing of
-- those accounts changed).  Tokens and keys are never printed.  Exit 2 on a
-- configuration problem (TOKEN_KEYS unset included).
local cli = require "stripe_connect.cli"
local tokens = require "stripe_connect.tokens"

if arg and arg[1] then
  io.stderr:write("usage: stripe-connect run scripts/rotate_keys.lua (no arguments; settings from the environment)\n")
  os.exit(2)
end
local env = cli.from_env()
local store = env.store
if not store.token_keys then
  io.stderr:write("rotate_keys: TOKEN_KEYS is not set: export the keys (the new one first), " ..
    "or name a file holding them in TOKEN_KEYS_FILE\n")
  os.exit(2)
end
local newest = store.token_keys.keys[1].kid
local raw = assert(store.inner:list_accounts())
local done, current, unreadable = 0, 0, 0
for _, r in ipairs(raw) do
  local stale = false
  for _, f in ipairs(tokens.FIELDS) do
    if r[f] ~= nil and tokens.kid_of(r[f]) ~= newest then stale = true end
  end
  if stale then
    local sealed, err = {}, nil
    for _, f in ipairs(tokens.FIELDS) do
      if r[f] ~= nil then
        local aad = tokens.aad(r.id, f)
        local plain, oerr = tokens.open(store.token_keys, r[f], aad)
        if not plain then err = oerr; break end
        sealed[f] = tokens.seal(store.token_keys, plain, aad)
      end
    end
    if err then
      unreadable = unreadable + 1
      io.stderr:write("rotate_keys: " .. r.id .. ": " .. err .. "; left as it is\n")
    elseif store.inner.swap_tokens then
      -- only while the row still holds what was read (a concurrent refresh
      -- or disconnect wins; its new values are sealed under the newest key)
      if assert(store.inner:swap_tokens(r.id, r, sealed)) then done = done + 1 else current = current + 1 end
    else
      local a = assert(store:get_account(r.id))
      assert(store:put_account(a))
      done = done + 1
    end
  else
    current = current + 1
  end
end
print(string.format("rotate_keys: %d re-encrypted under %s, %d already current, %d unreadable",
  done, newest, current, unreadable))
store:close()
os.exit(unreadable > 0 and 1 or 0)
