-- spec/support/failing_hook_policy.lua — a POLICY file for findings_platform_spec
-- (finding 4): while the file $HOOK_FAIL exists, on_event and on_deauthorized
-- raise; otherwise each call appends "HOOK ID\n" to $HOOK_LOG, so the spec
-- sees whether (and how often) a retried delivery ran the hook.
local FAIL, LOG = os.getenv("HOOK_FAIL"), os.getenv("HOOK_LOG")

local function run(name, id)
  local f = FAIL and io.open(FAIL, "rb")
  if f then f:close(); error("the downstream system is unavailable") end
  local out = assert(io.open(LOG, "ab"))
  out:write(name, " ", id, "\n")
  out:close()
end

return {
  on_event = function(event) run("on_event", event.id) end,
  on_deauthorized = function(account_id) run("on_deauthorized", account_id) end,
}
