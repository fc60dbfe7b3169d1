-- spec/support/apps/webhook_handler_app.lua — webhook.handler alone behind
-- `stripe-connect serve`, for webhook_e2e_spec's server-limit rows: POST
-- /webhooks is the handler over a memory store, with secrets from
-- $WEBHOOK_SECRETS, max_body from $WEBHOOK_MAX_BODY and the platform mode
-- from $WEBHOOK_LIVEMODE ("true"/"false"; unset: no check).  GET /state
-- answers {"deauthorized":[account…],"counters":{…}} (counters: the
-- process's stripe_connect.metrics).  Run with --workers 1 (the memory store
-- and the deauthorized list are per worker).
local cjson = require "cjson.safe"
local webhook = require "stripe_connect.webhook"
local memory = require "stripe_connect.store.memory"
local metrics = require "stripe_connect.metrics"

local store = memory.new()
local deauthorized = {}
local livemode = ({ ["true"] = true, ["false"] = false })[os.getenv("WEBHOOK_LIVEMODE") or ""]

local handle = webhook.handler {
  secrets = assert(webhook.parse_secrets(os.getenv("WEBHOOK_SECRETS")), "WEBHOOK_SECRETS is not set"),
  store = store,
  max_body = tonumber(os.getenv("WEBHOOK_MAX_BODY") or "") or nil,
  livemode = livemode,
  on_deauthorized = function(account) deauthorized[#deauthorized + 1] = account end,
}

return {
  { "POST", "/webhooks", handle },
  { "GET", "/state", function()
    return { status = 200, headers = { ["Content-Type"] = "application/json" },
             body = assert(cjson.encode({ deauthorized = deauthorized, counters = metrics.snapshot().counters })) }
  end },
}
