/* core.parse_query: any input answers a table or nil, message, code
 * (never a raise); every value is a string or an array of strings; with
 * plus_as_space = false too. */
#define FUZZ_CHECK \
"local core = ...\n" \
"local function check(t, msg, code, what)\n" \
"  if t == nil then\n" \
"    if type(msg) ~= 'string' or (code ~= 'too_large' and code ~= 'too_many_fields' and code ~= 'malformed') then\n" \
"      error('FUZZ: ' .. what .. ': a failure without message and code')\n" \
"    end\n" \
"    return\n" \
"  end\n" \
"  for k, v in pairs(t) do\n" \
"    if type(k) ~= 'string' or k == '' then error('FUZZ: ' .. what .. ': bad name') end\n" \
"    if type(v) == 'table' then\n" \
"      if #v < 2 then error('FUZZ: ' .. what .. ': an array of fewer than 2 values') end\n" \
"      for _, x in ipairs(v) do if type(x) ~= 'string' then error('FUZZ: ' .. what .. ': bad value') end end\n" \
"    elseif type(v) ~= 'string' then error('FUZZ: ' .. what .. ': bad value') end\n" \
"  end\n" \
"end\n" \
"return function(data)\n" \
"  local ok, t, msg, code = pcall(core.parse_query, data)\n" \
"  if not ok then error('FUZZ: parse_query raised: ' .. tostring(t)) end\n" \
"  check(t, msg, code, 'parse_query')\n" \
"  ok, t, msg, code = pcall(core.parse_query, data, { plus_as_space = false, max_fields = 8 })\n" \
"  if not ok then error('FUZZ: parse_query raised: ' .. tostring(t)) end\n" \
"  check(t, msg, code, 'parse_query literal +')\n" \
"end\n"
#include "fuzz_lua.h"
