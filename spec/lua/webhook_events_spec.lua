-- stripe_connect.webhook_events: the realistic test events the fake,
-- scripts/send_webhook.lua and the specs sign and send.
local lu = require "luaunit"
local cjson = require "cjson.safe"
local events = require "stripe_connect.webhook_events"

local ACCT = require("support.webhook_fixtures").ACCOUNT

local TestWebhookEvents = {}

function TestWebhookEvents.test_event_shape()
  local text, ev = events.event { type = events.DEAUTHORIZED, account = ACCT, created = 1621742759 }
  local decoded = cjson.decode(text)
  lu.assertStrMatches(decoded.id, "evt_[%w]+")
  lu.assertEquals(decoded.object, "event")
  lu.assertEquals(decoded.account, ACCT)
  lu.assertEquals(decoded.created, 1621742759)
  lu.assertEquals(decoded.livemode, false)
  lu.assertEquals(decoded.type, events.DEAUTHORIZED)
  lu.assertEquals(decoded.data.object.object, "application")
  lu.assertStrMatches(decoded.data.object.id, "ca_[%w]+")
  lu.assertEquals(decoded.data.object.name, cjson.null)
  lu.assertEquals(decoded.request, { id = cjson.null, idempotency_key = cjson.null })
  lu.assertEquals(ev.id, decoded.id)
  -- Stripe's key order, as in the fixture.
  lu.assertStrMatches(text, '^{"id":"evt_[%w]+","object":"event","account":"' .. ACCT ..
    '","api_version":"[%d-]+","created":1621742759,"data":{"object":{"id":"ca_[%w]+","object":"application",' ..
    '"name":null}},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},' ..
    '"type":"account.application.deauthorized"}$')
  lu.assertNotEquals(events.event { type = "x" }, events.event { type = "x" })
  lu.assertErrorMsgContains("type is required", events.event, {})
end

return { TestWebhookEvents = TestWebhookEvents }
