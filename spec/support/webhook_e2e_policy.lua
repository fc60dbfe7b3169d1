-- spec/support/webhook_e2e_policy.lua — a POLICY file for webhook_e2e_spec:
-- each on_deauthorized call appends "ACCOUNT SOURCE\n" to $WEBHOOK_E2E_LOG, so
-- the spec can count how often an event was processed (across workers).
local LOG = os.getenv("WEBHOOK_E2E_LOG")

return {
  on_deauthorized = function(account_id, source)
    if not LOG then return end
    local f = assert(io.open(LOG, "ab"))
    f:write(account_id, " ", source, "\n")
    f:close()
  end,
}
