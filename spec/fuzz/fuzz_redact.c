/* core.redact (the redactor the host's error lines and the library's logs
 * pass through): any input answers a string and never raises; redacting
 * twice changes nothing (nothing it masks is left, and the mask makes no new
 * secret); the bytes between the words stay, in order; a configured secret
 * (the input's first 8 bytes, when they share no byte with the mask) is
 * gone. */
#define FUZZ_CHECK \
"local core = ...\n" \
"local function between_words(s) return (s:gsub('%[redacted%]', ''):gsub('[%w_]+', '')) end\n" \
"return function(data)\n" \
"  local ok, out = pcall(core.redact, data)\n" \
"  if not ok then error('FUZZ: redact raised: ' .. tostring(out)) end\n" \
"  if core.redact(out) ~= out then error('FUZZ: redacting twice changed the text') end\n" \
"  if between_words(out) ~= between_words(data) then error('FUZZ: bytes between the words changed') end\n" \
"  local secret = data:sub(1, 8)\n" \
"  if #secret == 8 and not secret:find('[%[%]redact]') then\n" \
"    if core.redact(data, { secret }):find(secret, 1, true) then error('FUZZ: a configured secret was left') end\n" \
"  end\n" \
"end\n"
#include "fuzz_lua.h"
