-- spec/support/apps/webhook_sink.lua — a webhook receiver for integration
-- specs: POST /webhooks verifies the raw body against Stripe-Signature with
-- the secrets in $SINK_SECRETS (comma list) and answers 200 {"verified":true,
-- "id","type","account"} or 400 {"verified":false,"reason"}; GET /received
-- lists what arrived, in order.  Run with --workers 1 (memory per worker).
local cjson = require "cjson.safe"
local webhook = require "stripe_connect.webhook"

local SECRETS = assert(webhook.parse_secrets(os.getenv("SINK_SECRETS")), "SINK_SECRETS is not set")
local received = {}

local function json(status, t)
  return { status = status, headers = { ["Content-Type"] = "application/json" }, body = cjson.encode(t) }
end

return {
  { "POST", "/webhooks", function(req)
    local ok, _, reason = webhook.verify(req.body, req.headers["stripe-signature"] or "", SECRETS)
    local event = cjson.decode(req.body) or {}
    local entry = { verified = ok == true, reason = reason, id = event.id, type = event.type,
                    account = event.account, application = event.data and event.data.object and event.data.object.id,
                    signatures = select(2, (req.headers["stripe-signature"] or ""):gsub("v1=", "")) }
    received[#received + 1] = entry
    return json(ok and 200 or 400, entry)
  end },
  { "GET", "/received", function()
    local parts = {}
    for i, e in ipairs(received) do parts[i] = cjson.encode(e) end
    return { status = 200, headers = { ["Content-Type"] = "application/json" },
             body = '{"data":[' .. table.concat(parts, ",") .. "]}" }
  end },
}
