-- stripe_connect.fake.webhooks — the fake's webhook events (doc/PROTOCOL.md
-- §6): send_event signs an event with every configured secret and POSTs it
-- to webhook_url; POST /__fake/accounts/{acct}/disconnect (the user ends the
-- connection in their dashboard: account.application.deauthorized) and
-- GET /__fake/events (what was sent, and its delivery).  Methods of the
-- fake, mixed in by stripe_connect.fake.
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local webhook = require "stripe_connect.webhook"
local webhook_events = require "stripe_connect.webhook_events"
local http = require "stripe_connect.fake.http"

local json, single = http.json, http.single

local Fake = {}

-- The account.application.deauthorized event for account, signed with every
-- configured secret and POSTed to webhook_url.  Answers the event and the
-- delivery outcome.
function Fake:send_deauthorized(account, opts)
  return self:send_event(webhook.DEAUTHORIZED, account,
    { id = self.config.client_id, object = "application", name = self.config.platform_name or cjson.null }, opts)
end

-- send_event(type, account, object, opts) — one event about `account`,
-- signed with every configured secret and POSTed to webhook_url; answers
-- the event and the delivery outcome (recorded in /__fake/events).
function Fake:send_event(event_type, account, object, opts)
  opts = opts or {}
  local payload, event = webhook_events.event{
    type = event_type, account = account, id = opts.event_id, created = self:now(),
    livemode = self.livemode, object = object,
  }
  local delivery = { url = self.config.webhook_url }
  if not self.config.webhook_url then
    delivery.skipped = "FAKE_WEBHOOK_URL is not set"
  else
    local headers = { ["Content-Type"] = "application/json; charset=utf-8",
                      ["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)" }
    local secrets = self.config.webhook_secrets or {}
    if #secrets > 0 then
      headers["Stripe-Signature"] = webhook.sign(payload, secrets, { timestamp = opts.timestamp or os.time() })
    end
    local res, message, code = (self.config.http_request or core.http_request){
      method = "POST", url = self.config.webhook_url, headers = headers, body = payload, timeout = 10,
    }
    if res then
      delivery.status = res.status
    else
      delivery.error, delivery.code = message, code
    end
  end
  self.events[#self.events + 1] = { event = event, delivery = delivery }
  return event, delivery
end

-- POST /__fake/accounts/{acct}/disconnect  (form or query: event_id,
-- timestamp, force=true to send the event for an account not connected)
function Fake:disconnect(req, account)
  local form = http.form_of(req) or {}
  local args = http.args_of(req)
  local function param(name) return single(form, name) or single(args, name) end
  local c = self.connections[account]
  if (not c or not c.connected) and param("force") ~= "true" then
    return json(404, { error = "not_connected", error_description = account .. " is not connected to " ..
      self.config.client_id .. " (pass force=true to send the event anyway)." })
  end
  local timestamp = tonumber(param("timestamp") or "")
  local event_id = param("event_id")
  if event_id and not event_id:match("^evt_[%w_]+$") then
    return json(400, { error = "invalid_request", error_description = "event_id must look like evt_…" })
  end
  if timestamp and not (timestamp >= 0 and timestamp <= webhook.MAX_TIMESTAMP) then
    return json(400, { error = "invalid_request", error_description = "timestamp must be Unix seconds (0 to 15 digits)" })
  end
  self:revoke(account)
  local event, delivery = self:send_deauthorized(account, { event_id = event_id, timestamp = timestamp })
  return json(200, { stripe_user_id = account, event = event, delivery = delivery })
end

-- GET /__fake/events
function Fake:events_list()
  local items = {}
  for i, e in ipairs(self.events) do items[i] = { id = e.event.id, account = e.event.account,
    type = e.event.type, delivery = e.delivery } end
  return http.list(items)
end

return Fake
