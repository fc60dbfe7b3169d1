/* core.base64_* and base64url_* (and hex_*): decoding any input answers
 * bytes or nil, message, never a raise; every decodable text is the one
 * canonical encoding of its bytes (encode(decode(s)) == s); and
 * decode(encode(x)) == x for any bytes. */
#define FUZZ_CHECK \
"local core = ...\n" \
"local function pair(enc, dec, name, canon)\n" \
"  return function(data)\n" \
"    local e = enc(data)\n" \
"    if dec(e) ~= data then error('FUZZ: ' .. name .. ': decode(encode(x)) ~= x') end\n" \
"    local ok, d, msg = pcall(dec, data)\n" \
"    if not ok then error('FUZZ: ' .. name .. ' decode raised: ' .. tostring(d)) end\n" \
"    if d == nil then\n" \
"      if type(msg) ~= 'string' then error('FUZZ: ' .. name .. ': a failure without a message') end\n" \
"    elseif enc(d) ~= canon(data) then\n" \
"      error('FUZZ: ' .. name .. ': a non-canonical text decoded')\n" \
"    end\n" \
"  end\n" \
"end\n" \
"local same = function(s) return s end\n" \
"local checks = {\n" \
"  pair(core.base64_encode, core.base64_decode, 'base64', same),\n" \
"  pair(core.base64url_encode, core.base64url_decode, 'base64url', same),\n" \
"  pair(core.hex_encode, core.hex_decode, 'hex', string.lower),\n" \
"}\n" \
"return function(data)\n" \
"  for i = 1, #checks do checks[i](data) end\n" \
"end\n"
#include "fuzz_lua.h"
