/* core.parse_cookies: a table or nil, message, code (never a raise); names
 * and values are substrings of the header, names trimmed and not empty. */
#define FUZZ_CHECK \
"local core = ...\n" \
"return function(data)\n" \
"  local ok, t, msg, code = pcall(core.parse_cookies, data)\n" \
"  if not ok then error('FUZZ: parse_cookies raised: ' .. tostring(t)) end\n" \
"  if t == nil then\n" \
"    if type(msg) ~= 'string' or type(code) ~= 'string' then error('FUZZ: a failure without message and code') end\n" \
"    return\n" \
"  end\n" \
"  for k, v in pairs(t) do\n" \
"    if k == '' or k:find('^[ \\t]') or k:find('[ \\t]$') or k:find(';', 1, true) then error('FUZZ: bad name') end\n" \
"    if not data:find(k, 1, true) then error('FUZZ: a name not in the header') end\n" \
"    for _, x in ipairs(type(v) == 'table' and v or { v }) do\n" \
"      if x:find(';', 1, true) or not data:find(x, 1, true) then error('FUZZ: a value not in the header') end\n" \
"    end\n" \
"  end\n" \
"end\n"
#include "fuzz_lua.h"
