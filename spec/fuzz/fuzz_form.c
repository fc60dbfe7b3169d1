/* core.parse_form: as parse_query (a table or nil, message, code; never a
 * raise), and a form without '%' or '+' keeps its bytes. */
#define FUZZ_CHECK \
"local core = ...\n" \
"return function(data)\n" \
"  local ok, t, msg, code = pcall(core.parse_form, data, { max_length = 4096, max_fields = 16 })\n" \
"  if not ok then error('FUZZ: parse_form raised: ' .. tostring(t)) end\n" \
"  if t == nil then\n" \
"    if type(msg) ~= 'string' or type(code) ~= 'string' then error('FUZZ: a failure without message and code') end\n" \
"    return\n" \
"  end\n" \
"  local plain = not data:find('[%%+]')\n" \
"  for k, v in pairs(t) do\n" \
"    if plain and not data:find(k, 1, true) then error('FUZZ: a plain name changed') end\n" \
"    for _, x in ipairs(type(v) == 'table' and v or { v }) do\n" \
"      if type(x) ~= 'string' then error('FUZZ: bad value') end\n" \
"      if plain and not data:find(x, 1, true) then error('FUZZ: a plain value changed') end\n" \
"    end\n" \
"  end\n" \
"end\n"
#include "fuzz_lua.h"
