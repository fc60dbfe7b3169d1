-- stripe_connect.webhook — Stripe webhook signatures (PROTOCOL.md §5):
-- signing (for tests, the fake Connect and send_webhook.lua), verification,
-- and the platform's webhook endpoint.
local core = require "stripe_connect.core"

local M = {}

-- sign(payload, secrets, opts) -> `Stripe-Signature` header value.
-- secrets: one secret or a list (one v1 per secret, as Stripe does during
-- rotation); opts.timestamp (default now).
function M.sign(payload, secrets, opts)
  assert(type(payload) == "string", "sign: payload must be a string")
  if type(secrets) == "string" then secrets = { secrets } end
  assert(type(secrets) == "table" and #secrets > 0, "sign: secrets must be a string or a non-empty list")
  local t = math.floor((opts and opts.timestamp) or os.time())
  local parts = { "t=" .. string.format("%d", t) }
  for _, secret in ipairs(secrets) do
    parts[#parts + 1] = "v1=" .. core.hex_encode(core.hmac_sha256(secret, string.format("%d", t) .. "." .. payload))
  end
  return table.concat(parts, ",")
end

return M
