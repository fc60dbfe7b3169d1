/* core.webhook_verify: input is PAYLOAD "\n" HEADER.  Any header answers
 * true, t or nil, code, message, never a raise; true only when the header
 * holds the payload's real v1 signature (hex in either case, as the
 * verifier documents); the header Stripe would send for
 * the payload verifies, also with the fuzzed header's elements after it. */
#define FUZZ_CHECK \
"local core = ...\n" \
"local SECRETS = { 'whsec_fuzz_secret', 'whsec_fuzz_rotated' }\n" \
"local NOW = 1700000000\n" \
"local CODES = { no_payload = 1, no_header = 1, malformed_header = 1, no_v1 = 1, no_match = 1,\n" \
"                too_old = 1, in_future = 1 }\n" \
"local function verify(payload, header)\n" \
"  local ok, r, msg, code = pcall(core.webhook_verify, payload, header, SECRETS, { now = NOW, tolerance = 300 })\n" \
"  if not ok then error('FUZZ: webhook_verify raised: ' .. tostring(r)) end\n" \
"  if r ~= true and not (r == nil and CODES[code] and type(msg) == 'string') then\n" \
"    error('FUZZ: webhook_verify answered neither true nor a known code')\n" \
"  end\n" \
"  if msg and msg:find('whsec_', 1, true) then error('FUZZ: a secret in the message') end\n" \
"  return r, code\n" \
"end\n" \
"return function(data)\n" \
"  local payload, header = data:match('^(.-)\\n(.*)$')\n" \
"  if not payload then payload, header = data, '' end\n" \
"  if verify(payload, header) == true then\n" \
"    local real = false\n" \
"    for t in header:gmatch('t=(%d+)') do\n" \
"      for _, s in ipairs(SECRETS) do\n" \
"        if header:lower():find(core.hex_encode(core.hmac_sha256(s, t .. '.' .. payload)), 1, true) then real = true end\n" \
"      end\n" \
"    end\n" \
"    if not real then error('FUZZ: accepted without the real signature') end\n" \
"  end\n" \
"  if payload ~= '' then\n" \
"    local good = 't=' .. NOW .. ',v1=' .. core.hex_encode(core.hmac_sha256(SECRETS[2], NOW .. '.' .. payload))\n" \
"    if verify(payload, good) ~= true then error('FUZZ: the real header did not verify') end\n" \
"  end\n" \
"end\n"
#include "fuzz_lua.h"
