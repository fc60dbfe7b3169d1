-- spec/support/failing_hook_policy.lua — a POLICY file for findings_platform_spec
-- (finding 4) and crash_safety_spec: while the file $HOOK_FAIL exists,
-- on_event and on_deauthorized raise; while $HOOK_HOLD exists they wait
-- (having written $HOOK_HOLD.entered), so a spec can kill the server with
-- a hook in flight; otherwise each call appends "HOOK ID\n" to $HOOK_LOG, so
-- the spec sees whether (and how often) a retried delivery ran the hook.
local core = require "stripe_connect.core"

local FAIL, HOLD, LOG = os.getenv("HOOK_FAIL"), os.getenv("HOOK_HOLD"), os.getenv("HOOK_LOG")

local function exists(path)
  local f = path and io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function run(name, id)
  if exists(FAIL) then error("the downstream system is unavailable") end
  if exists(HOLD) then
    assert(io.open(HOLD .. ".entered", "wb")):close()
    while exists(HOLD) do core.sleep(0.05) end
  end
  local out = assert(io.open(LOG, "ab"))
  out:write(name, " ", id, "\n")
  out:close()
end

return {
  on_event = function(event) run("on_event", event.id) end,
  on_deauthorized = function(account_id) run("on_deauthorized", account_id) end,
}
