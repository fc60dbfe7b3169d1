/* core.url_encode / url_decode: decoding any input answers a string or
 * nil, message; encoding is ALPHA DIGIT -._~ and %XX only and decodes back
 * to the input; decoding an encoding of the decoded bytes is stable. */
#define FUZZ_CHECK \
"local core = ...\n" \
"return function(data)\n" \
"  local enc = core.url_encode(data)\n" \
"  if enc:find('[^%w%-%._~%%]') then error('FUZZ: url_encode left a reserved byte') end\n" \
"  if core.url_decode(enc) ~= data then error('FUZZ: url_decode(url_encode(x)) ~= x') end\n" \
"  local ok, dec, msg = pcall(core.url_decode, data)\n" \
"  if not ok then error('FUZZ: url_decode raised: ' .. tostring(dec)) end\n" \
"  if dec == nil then\n" \
"    if type(msg) ~= 'string' or not data:find('%', 1, true) then error('FUZZ: a failure without a %') end\n" \
"  elseif #dec > #data then error('FUZZ: decoding grew the input')\n" \
"  elseif not data:find('%', 1, true) and not data:find('+', 1, true) and dec ~= data then\n" \
"    error('FUZZ: an input without escapes changed')\n" \
"  end\n" \
"end\n"
#include "fuzz_lua.h"
