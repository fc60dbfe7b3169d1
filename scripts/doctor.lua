-- stripe-connect run scripts/doctor.lua [--json] [--offline] [--ca-file PATH]
-- Checks the platform's settings (the same environment as `serve
-- scripts/platform.lua`) against the known traps and prints each finding
-- with its fix.  Exit 0: clean; 1: findings; 2: usage.
local doctor = require "stripe_connect.doctor"

local USAGE = [[
usage: stripe-connect run scripts/doctor.lua [--json] [--offline] [--ca-file PATH]

Checks the platform's environment settings against known traps (state
secrets, PUBLIC_URL and redirect URIs, webhook secrets, Stripe endpoints
over http with a live key, the CA bundle, the store's file and folder, and
the clock against Stripe's Date header) and prints each finding with its fix.

  --json          machine-readable output: {"findings":[…],"checked":[…]}
  --offline       skip the one network call (the clock check)
  --ca-file PATH  the CA bundle to look for (default ]] .. doctor.CA_FILE .. [[)

Exit status: 0 clean, 1 findings, 2 usage.
]]

local json, offline, ca_file = false, false, nil
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--json" then json = true
  elseif a == "--offline" then offline = true
  elseif a == "--ca-file" and arg[i + 1] then ca_file = arg[i + 1]; i = i + 1
  elseif a == "--help" or a == "-h" then io.write(USAGE); os.exit(0)
  else io.stderr:write("doctor: unknown argument '", a, "'\n", USAGE); os.exit(2) end
  i = i + 1
end

local r = doctor.check{ offline = offline, ca_file = ca_file }
if json then
  local cjson = require "cjson"
  local list = {}
  for _, f in ipairs(r.findings) do list[#list + 1] = cjson.encode(f) end
  io.write('{"findings":[', table.concat(list, ","), '],"checked":', cjson.encode(r.checked), "}\n")
else
  if #r.findings == 0 then
    io.write("doctor: no findings (checked ", table.concat(r.checked, ", "), ")\n")
  else
    io.write(string.format("doctor: %d finding%s\n", #r.findings, #r.findings == 1 and "" or "s"))
    for _, f in ipairs(r.findings) do
      io.write(string.format("\n[%s] %s: %s\n  fix: %s\n", f.id, f.setting, f.problem, f.fix))
    end
  end
end
os.exit(#r.findings == 0 and 0 or 1)
