/* stripe_connect.state.verify (HMAC, base64url and constant-time compare in
 * the core, the token grammar in Lua): input is BINDING "\n" TOKEN.  Any
 * token answers claims or nil, a known code, a message, never a raise; a
 * token verifies only when it is one this keyring minted for this binding
 * (spec/fuzz/seeds.lua mints the seeds), and its claims are well-formed. */
#define FUZZ_CHECK \
"local core = ...\n" \
"local state = require 'stripe_connect.state'\n" \
"local kr = assert(state.keyring('k1:' .. ('f'):rep(43) .. ',k0:' .. ('e'):rep(43)))\n" \
"local NOW = 1700000100\n" \
"local CODES = { missing = 1, malformed = 1, unknown_key = 1, bad_signature = 1, expired = 1,\n" \
"                no_binding = 1, other_browser = 1 }\n" \
"return function(data)\n" \
"  local binding, token = data:match('^([^\\n]*)\\n(.*)$')\n" \
"  if not binding then binding, token = ('b'):rep(32), data end\n" \
"  local ok, claims, msg, code = pcall(state.verify, kr, token, { binding = binding, now = NOW, ttl = 1800 })\n" \
"  if not ok then error('FUZZ: state.verify raised: ' .. tostring(claims)) end\n" \
"  if claims == nil then\n" \
"    if not CODES[code] or type(msg) ~= 'string' then error('FUZZ: an unknown failure code') end\n" \
"    return\n" \
"  end\n" \
"  if claims.kid ~= 'k1' and claims.kid ~= 'k0' then error('FUZZ: claims with an unknown kid') end\n" \
"  if type(claims.issued_at) ~= 'number' or claims.issued_at > NOW + 300 or claims.issued_at + 1800 <= NOW then\n" \
"    error('FUZZ: claims outside their lifetime')\n" \
"  end\n" \
"  if claims.return_to ~= nil and claims.return_to:sub(1, 1) ~= '/' then error('FUZZ: a return_to that is not a local path') end\n" \
"  -- re-mint check: the same fields under the same key give the same MAC\n" \
"  local sig = token:match('%.([^.]*)$')\n" \
"  local key = kr.by_kid[claims.kid]\n" \
"  local mac = core.base64url_encode(core.hmac_sha256(key.secret, 'state\\0' .. token:sub(1, #token - #sig - 1)))\n" \
"  if mac ~= sig then error('FUZZ: accepted a token whose MAC is not its own') end\n" \
"end\n"
#include "fuzz_lua.h"
