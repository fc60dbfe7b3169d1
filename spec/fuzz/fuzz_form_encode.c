/* core.form_encode round trips through core.parse_form: a flat table of
 * string keys and values (pairs split on NUL in the input) and one nested
 * level ("n[key]") come back as they went in.  (A flat key "n[x]" would
 * read back the same as n = { x = … }: the format cannot tell them apart, so
 * the input never makes one.) */
#define FUZZ_CHECK \
"local core = ...\n" \
"return function(data)\n" \
"  local parts, t, nested, n = {}, {}, {}, 0\n" \
"  for p in (data .. '\\0'):gmatch('([^%z]*)%z') do parts[#parts + 1] = p end\n" \
"  for i = 1, math.min(#parts, 64), 2 do\n" \
"    local k, v = parts[i], parts[i + 1] or ''\n" \
"    if k ~= '' and k:sub(1, 2) ~= 'n[' then\n" \
"      if i % 4 == 1 then t[k] = v else nested[k] = v end\n" \
"      n = n + 1\n" \
"    end\n" \
"  end\n" \
"  local has_nested = next(nested) ~= nil\n" \
"  if has_nested then t.n = nested end\n" \
"  local enc = core.form_encode(t)\n" \
"  local back, msg = core.parse_form(enc, { plus_as_space = false, max_fields = 256 })\n" \
"  if not back then error('FUZZ: parse_form refused form_encode output: ' .. tostring(msg)) end\n" \
"  local want = {}\n" \
"  for k, v in pairs(t) do if k ~= 'n' or not has_nested then want[k] = v end end\n" \
"  for k, v in pairs(nested) do want['n[' .. k .. ']'] = v end\n" \
"  for k, v in pairs(want) do\n" \
"    if back[k] ~= v then error('FUZZ: form_encode round trip lost ' .. string.format('%q', k)) end\n" \
"  end\n" \
"  for k in pairs(back) do\n" \
"    if want[k] == nil then error('FUZZ: form_encode round trip added ' .. string.format('%q', k)) end\n" \
"  end\n" \
"end\n"
#include "fuzz_lua.h"
