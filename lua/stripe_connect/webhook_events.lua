-- stripe_connect.webhook_events — realistic Stripe events for tests, the
-- fake and scripts/send_webhook.lua (doc/PROTOCOL.md §6).
--
--   event(opts) -> JSON text, event table
--
-- stripe_connect.webhook re-exports event as webhook.event, its documented
-- name; this module needs nothing of the webhook endpoint.
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local util = require "stripe_connect.util"

local M = {}

M.DEAUTHORIZED = "account.application.deauthorized"

local function random_id(prefix, n)
  return prefix .. core.base64url_encode(core.random_bytes(n)):gsub("[-_]", "x")
end

-- A JSON object with the keys in Stripe's order (cjson keeps no order);
-- raw[k], when given, is the already-encoded value of k.
local function ordered_json(t, keys, raw)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = raw and raw[k] or (t[k] ~= nil and assert(cjson.encode(t[k])))
    if v then parts[#parts + 1] = cjson.encode(k) .. ":" .. v end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local event_keys = { "id", "object", "account", "api_version", "created", "data", "livemode",
                     "pending_webhooks", "request", "type" }

-- event{ type=, account=, id=, created=, livemode=, api_version=, object=,
--        pending_webhooks= } -> JSON text, event table.
-- A realistic event as Stripe sends it (doc/PROTOCOL.md §6).  For
-- account.application.deauthorized, data.object defaults to the platform's
-- application `{id="ca_…", object="application", name=null}`.
function M.event(opts)
  opts = util.check_opts(opts, { type = true, account = true, id = true, created = true, livemode = true,
                                 api_version = true, object = true, pending_webhooks = true }, "event")
  assert(type(opts.type) == "string" and opts.type ~= "", "event: type is required")
  local object = opts.object
  if object == nil and opts.type == M.DEAUTHORIZED then
    object = { id = random_id("ca_", 24), object = "application", name = cjson.null }
  end
  local ev = {
    id = opts.id or random_id("evt_", 18),
    object = "event",
    account = opts.account,
    api_version = opts.api_version or "2020-08-27",
    created = opts.created or os.time(),
    data = { object = object or {} },
    livemode = opts.livemode == true,
    pending_webhooks = opts.pending_webhooks or 1,
    request = { id = cjson.null, idempotency_key = cjson.null },
    type = opts.type,
  }
  local object_json = object and object.object == "application"
    and ordered_json(object, { "id", "object", "name" }) or assert(cjson.encode(ev.data.object))
  return ordered_json(ev, event_keys, { data = '{"object":' .. object_json .. "}",
                                        request = ordered_json(ev.request, { "id", "idempotency_key" }) }), ev
end

return M
