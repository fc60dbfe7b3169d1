-- stripe_connect.webhook — Stripe webhook signatures and the platform's
-- webhook endpoint (doc/PROTOCOL.md §5–6).
--
--   sign(payload, secrets, opts)        -> `Stripe-Signature` header value
--   verify(payload, header, secrets, opts) -> true, timestamp | nil, message, code
--   event(opts)                         -> JSON text, event table (realistic test events;
--                                          stripe_connect.webhook_events.event)
--   parse_secrets(s)                    -> list of secrets from "whsec_a,whsec_b"
--   handler(opts)                       -> function(req) -> res, for POST /webhooks
--
-- The handler verifies the exact raw body, de-duplicates events by id in the
-- store (a claim held for a lease, marked processed once applied: a crash
-- in between loses no event), marks accounts disconnected on `account.application.deauthorized`
-- (the top-level `account`, never data.object.id, which is the platform's
-- ca_… application id) and hands other events to `on_event`.
local core = require "stripe_connect.core"
local cjson = require "cjson.safe"
local util = require "stripe_connect.util"
local events = require "stripe_connect.webhook_events"

local check_opts = util.check_opts

local M = {}

M.DEFAULT_TOLERANCE = 300
M.MAX_TOLERANCE = 10 * 365 * 24 * 3600 -- the C core's bound (host/core/webhook.c)
M.MAX_SECRETS = 16
M.MAX_TIMESTAMP = 999999999999999       -- 15 digits: the C core's bound on `t`
M.DEFAULT_MAX_BODY = 1024 * 1024
M.MIN_EVENT_TTL = 72 * 3600            -- Stripe retries for up to three days
M.DEFAULT_EVENT_TTL = 7 * 24 * 3600
M.DEFAULT_EVENT_LEASE = 300            -- seconds a claim holds before another delivery may take it
M.DEAUTHORIZED = events.DEAUTHORIZED

local function check_secrets(secrets, where)
  if type(secrets) == "string" then secrets = { secrets } end
  if type(secrets) ~= "table" or #secrets == 0 then
    error(where .. ": secrets must be a string or a non-empty list", 3)
  end
  for _, s in ipairs(secrets) do
    if type(s) ~= "string" or s == "" then error(where .. ": every secret must be a non-empty string", 3) end
  end
  if #secrets > M.MAX_SECRETS then error(where .. ": at most " .. M.MAX_SECRETS .. " secrets", 3) end
  return secrets
end

-- sign(payload, secrets, opts) -> `Stripe-Signature` header value.
-- secrets: one secret or a list (one signature per secret, as Stripe does
-- during rotation).  opts.timestamp (default now); opts.scheme (default
-- "v1"; "v0" makes the header Stripe's test events carry alongside v1).
-- The timestamp is floored, as stripe-node's generateTestHeaderString does,
-- and must lie in 0 .. MAX_TIMESTAMP (what verify accepts).
function M.sign(payload, secrets, opts)
  assert(type(payload) == "string", "sign: payload must be a string")
  secrets = check_secrets(secrets, "sign")
  opts = check_opts(opts, { timestamp = true, scheme = true }, "sign")
  local ts = opts.timestamp or os.time()
  if type(ts) ~= "number" or not (ts >= 0 and ts < M.MAX_TIMESTAMP + 1) then
    error("sign: timestamp must be a number of seconds from 0 to " .. M.MAX_TIMESTAMP, 2)
  end
  local t = string.format("%d", math.floor(ts))
  local scheme = opts.scheme or "v1"
  if type(scheme) ~= "string" or not scheme:match("^[%w]+$") then
    error("sign: scheme must be letters and digits, like v1 or v0", 2)
  end
  local parts = { "t=" .. t }
  for _, secret in ipairs(secrets) do
    parts[#parts + 1] = scheme .. "=" .. core.hex_encode(core.hmac_sha256(secret, t .. "." .. payload))
  end
  return table.concat(parts, ",")
end

-- verify(payload, header, secrets, opts) -> true, timestamp | nil, message, code.
-- secrets: a string or a list (rotation); opts: tolerance (seconds, default
-- 300; must be positive: 0 does not disable the check), now (seconds, tests).
-- Codes: no_payload, no_header, malformed_header, no_v1, no_match, too_old,
-- in_future.  See host/core/webhook.c for the header grammar.
function M.verify(payload, header, secrets, opts)
  return core.webhook_verify(payload, header, secrets, opts)
end

-- parse_secrets("whsec_a, whsec_b") -> { "whsec_a", "whsec_b" } (nil or "" -> nil).
-- The form of STRIPE_WEBHOOK_SECRETS: comma-separated, spaces ignored.
function M.parse_secrets(s)
  if s == nil then return nil end
  local list = util.split_list(s)
  if #list == 0 then return nil end
  return list
end

-- event{ type=, account=, … } -> JSON text, event table: a realistic test
-- event (stripe_connect.webhook_events, which holds the generator).
M.event = events.event

local json_response = util.json_response

-- The bodies of the usual answers, encoded once.
local RECEIVED = assert(cjson.encode({ received = true }))
local DUPLICATE = assert(cjson.encode({ received = true, duplicate = true }))
local PROCESSING = assert(cjson.encode({ error = "processing" }))

-- Adds one to stripe_connect_webhooks_total{result=…[,reason=…]} in the
-- handler's metrics registry (process memory; GET /metrics shows it).
local series_of = {} -- result .. "\0" .. reason -> series, made once each
local function count_delivery(o, result, reason)
  local key = reason and (result .. "\0" .. reason) or result
  local series = series_of[key]
  if not series then
    series = reason and string.format('stripe_connect_webhooks_total{result="%s",reason="%s"}', result, reason)
      or string.format('stripe_connect_webhooks_total{result="%s"}', result)
    series_of[key] = series
  end
  o.metrics.incr(series)
end

local function mode_name(livemode) return livemode and "live" or "test" end

-- The event as a table when it has a string id and type; nil otherwise.
local function parse_event(body)
  local ev = cjson.decode(body)
  if type(ev) ~= "table" or type(ev.id) ~= "string" or ev.id == "" or #ev.id > 255
     or type(ev.type) ~= "string" or ev.type == "" then
    return nil
  end
  return ev
end

-- Runs the event's effects; raises on failure (the caller releases the id).
local function apply_event(o, ev, req)
  if ev.type == M.DEAUTHORIZED then
    local ok, err = o.store:mark_disconnected(ev.account, "webhook")
    if ok == nil and err ~= nil then error("mark_disconnected: " .. tostring(err), 0) end
    if ok then
      o.metrics.incr('stripe_connect_deauthorizations_total{source="webhook"}')
      o.event("disconnected", req, { account = ev.account, source = "webhook", event_id = ev.id })
    end
    if o.on_deauthorized then o.on_deauthorized(ev.account, "webhook") end
  elseif o.on_event then
    o.on_event(ev)
  end
end

-- claim(o, ev) -> "first" | "processing" | "done" | nil, message: the id
-- claimed with a lease (claim_event) when the store has it, else for good
-- (event_once, processed or not: a crash before the effect loses the event).
local CLAIMS = { first = true, processing = true, done = true }
local function claim(o, ev)
  if o.leased then
    local c, err = o.store:claim_event(ev.id, o.event_lease)
    if c == nil or CLAIMS[c] then return c, err end
    return nil, "claim_event answered " .. tostring(c) .. " (first, processing or done expected)"
  end
  local first, err = o.store:event_once(ev.id, o.event_ttl)
  if first == nil then return nil, err end
  return first and "first" or "done"
end

-- After the effect: the claimed id is marked processed (finish_event).  If
-- that fails the effect stands and the answer is still 200; the claim
-- lapses with its lease, and a later copy is applied again (at-least-once).
local function finish(o, ev, req)
  if not o.leased then return end
  local ok, r, err = pcall(o.store.finish_event, o.store, ev.id, o.event_ttl)
  if ok and r ~= nil and r ~= false then return end
  local msg = tostring(ok and err or r)
  o.log(string.format("event %s (%s) was applied but finish_event failed: %s; its claim lapses " ..
    "after %d s and a later copy is applied again", ev.id, ev.type, msg, o.event_lease))
  o.event("store_error", req, { event_id = ev.id, message = msg }, "error")
end

-- The processing failed: the id is given back (forget_event) so Stripe's
-- retry runs it again.  -> res (500).
local function release(o, ev, req, perr)
  count_delivery(o, "failed")
  o.event("webhook_failed", req, { event_id = ev.id, event_type = ev.type, message = tostring(perr) }, "error")
  local released = false
  if o.store.forget_event then
    local fok, r = pcall(o.store.forget_event, o.store, ev.id)
    released = fok and r ~= nil and r ~= false
  end
  local kept = o.leased and (" and stays claimed until its lease passes (%d s; the store could not " ..
    "forget_event it)"):format(o.event_lease) or " and stays marked as seen (the store could not forget_event it)"
  o.log(string.format("event %s (%s) failed%s: %s", ev.id, ev.type, released and "" or kept, tostring(perr)))
  return json_response(500, { error = "processing_failed" })
end

-- Claims the event id, processes the event, marks it processed, or gives
-- the id back when the processing failed.  -> res.
local function dispatch(o, ev, req)
  local c, err = claim(o, ev)
  if c == nil then
    o.log("event " .. ev.id .. ": store failed: " .. tostring(err))
    o.event("store_error", req, { event_id = ev.id, message = tostring(err) }, "error")
    count_delivery(o, "failed")
    return json_response(503, { error = "store_unavailable" }) -- Stripe retries it
  end
  if c == "done" then
    count_delivery(o, "duplicate")
    o.event("webhook_duplicate", req, { event_id = ev.id, event_type = ev.type })
    return json_response(200, DUPLICATE)
  end
  if c == "processing" then
    count_delivery(o, "processing")
    o.log(string.format("event %s (%s) is claimed by another delivery whose lease has not passed: " ..
      "answered 409 so that Stripe retries it", ev.id, ev.type))
    o.event("webhook_processing", req, { event_id = ev.id, event_type = ev.type }, "warn")
    return json_response(409, PROCESSING)
  end
  local ok, perr = pcall(apply_event, o, ev, req)
  if not ok then return release(o, ev, req, perr) end
  finish(o, ev, req)
  count_delivery(o, "processed")
  o.event("webhook_processed", req, { event_id = ev.id, event_type = ev.type })
  return json_response(200, RECEIVED)
end

--[[
handler{ secrets=, store=, tolerance=, livemode=, on_deauthorized=fn(account_id, source),
         on_event=fn(event), max_body=, event_ttl=, event_lease=, log=fn(message),
         metrics=, event=fn(name, req, fields, level) }   (event:
         stripe_connect.log's event, for webhook_verified, webhook_rejected
         (reason), webhook_duplicate, webhook_processing, webhook_processed,
         webhook_failed, disconnected and store_error lines)
  -> function(req) -> res        (mount it at POST /webhooks)

- secrets: a secret or a list of up to 16 (rotation); tolerance: seconds,
  1 to 10 years (default 300).  The exact raw req.body and
  req.headers["stripe-signature"] are verified.  Failure -> 400
  {"error":"<reason code>"} (no message, nothing secret).
- Body over max_body (default 1 MiB) -> 413 before any work.
- A body that is not a JSON object with string `id` and `type` -> 400
  {"error":"invalid_event"} even when signed; a deauthorization without a
  string top-level `account` likewise.
- livemode: the platform's mode (true for live, false for test; the
  platform passes its secret key's mode).  Stripe sends a production
  endpoint both live and test events (doc/PROTOCOL.md §6): an event whose
  `livemode` differs is acknowledged 200 {"received":true,"ignored":"livemode"}
  and not applied (no store claim, no hook), and logged and counted.  With
  the check on, an event without a boolean `livemode` is invalid_event.
  nil (the default): no check.
- store: the store interface of stripe_connect.store (store/init.lua):
  event_once and mark_disconnected are required; claim_event,
  finish_event and forget_event are used when the store has them.  The
  event id is claimed before any effect, so two concurrent deliveries of
  one event are processed once:
  * with claim_event and finish_event (the memory, SQLite and PostgreSQL
    stores): `claim_event(id, event_lease)` (default 300 s, a whole number
    of seconds, at least 1 and less than event_ttl) holds the id for the
    lease; once the effect is applied, `finish_event(id, event_ttl)`
    (default 7 days, at least 72 h) remembers it as processed.  A delivery
    that finds the id processed answers 200 {"received":true,"duplicate":true}
    and does nothing; one that finds a live claim answers 409
    {"error":"processing"} (logged, counted) so that Stripe retries later.
    A process that dies between the claim and the effect (kill -9, power
    loss) loses nothing: its claim lapses with the lease, and Stripe's
    next retry applies the event.  If finish_event fails the answer is
    still 200 (logged): the claim lapses and a later copy is applied
    again.  A hook running longer than the lease may meet a second copy
    running beside it.
  * otherwise `event_once(id, event_ttl)` marks the id processed from the
    claim on (a crash before the effect loses the event: Stripe's retries
    are answered as duplicates).
- account.application.deauthorized -> store:mark_disconnected(account,
  "webhook") (status disconnected, tokens wiped), then on_deauthorized.
  Other types -> on_event(event) when set.
- When processing raises (a hook or the store), the id is released with
  `store:forget_event(id)` when the store has it, and the answer is 500, so
  Stripe's retry processes the event again.  Hooks must therefore be
  idempotent (mark_disconnected is): Stripe's delivery is at-least-once.
  A store without forget_event keeps the id claimed until the lease passes
  (claim_event) or marked for event_ttl (event_once), logged.
- log(message): where failures are reported (default stderr); messages
  hold event ids, types and error text, never bodies; Stripe keys, whsec_
  secrets, the configured secrets and ac_/rt_ codes in error text are
  masked ("[redacted]").
- metrics: a stripe_connect.metrics registry (default the process-wide
  one; never the store).  Counters: stripe_connect_webhooks_total with
  result="processed", "duplicate", "processing", "ignored_livemode", "failed", or
  result="rejected" and reason=<the 400/413 error code>.
]]
-- Raises unless the handler's options (o: the defaults filled in) are of
-- the kinds the list above says.
local function check_handler_options(o)
  assert(type(o.store) == "table" and o.store.event_once and o.store.mark_disconnected,
    "webhook.handler: store must implement event_once and mark_disconnected")
  assert(type(o.tolerance) == "number" and o.tolerance >= 1 and o.tolerance <= M.MAX_TOLERANCE
    and o.tolerance == math.floor(o.tolerance),
    "webhook.handler: tolerance must be a positive whole number of seconds, at most 10 years " ..
    "(0 does not disable the check)")
  assert(o.livemode == nil or type(o.livemode) == "boolean", "webhook.handler: livemode must be a boolean")
  assert(type(o.max_body) == "number" and o.max_body > 0, "webhook.handler: max_body must be positive")
  assert(type(o.event_ttl) == "number" and o.event_ttl >= M.MIN_EVENT_TTL,
    "webhook.handler: event_ttl must be at least 72 hours (Stripe retries for three days)")
  assert(type(o.event_lease) == "number" and o.event_lease >= 1 and o.event_lease < o.event_ttl
    and o.event_lease == math.floor(o.event_lease),
    "webhook.handler: event_lease must be a whole number of seconds, at least 1 and less than event_ttl")
  for _, k in ipairs({ "on_deauthorized", "on_event", "log", "event" }) do
    assert(o[k] == nil or type(o[k]) == "function", "webhook.handler: " .. k .. " must be a function")
  end
end

local function reject(o, req, status, code)
  count_delivery(o, "rejected", code)
  o.event("webhook_rejected", req, { reason = code, status = status }, "warn")
  return json_response(status, { error = code })
end

-- receive(o, req) -> res: one delivery, verified, parsed, checked against
-- the platform's mode, then dispatched.
local function receive(o, req)
  if req.method ~= "POST" then
    local res = json_response(405, { error = "method_not_allowed" })
    res.headers["Allow"] = "POST"
    return res
  end
  local body = req.body or ""
  if #body > o.max_body then return reject(o, req, 413, "too_large") end
  local header = req.headers and req.headers["stripe-signature"]
  -- A repeated header arrives as a list under OpenResty: ambiguous, so refused.
  if type(header) == "table" then return reject(o, req, 400, "malformed_header") end
  local ok, _, code = core.webhook_verify(body, header, o.secrets, o.verify_opts)
  if not ok then return reject(o, req, 400, code) end
  local ev = parse_event(body)
  if not ev or (ev.type == M.DEAUTHORIZED and (type(ev.account) ~= "string" or ev.account == ""))
     or (o.livemode ~= nil and type(ev.livemode) ~= "boolean") then
    return reject(o, req, 400, "invalid_event")
  end
  o.event("webhook_verified", req, { event_id = ev.id, event_type = ev.type, account = ev.account })
  if o.livemode ~= nil and ev.livemode ~= o.livemode then
    o.log(string.format("event %s (%s) is a %s-mode event and this platform runs in %s mode: " ..
      "acknowledged, not applied", ev.id, ev.type, mode_name(ev.livemode), mode_name(o.livemode)))
    count_delivery(o, "ignored_livemode")
    return json_response(200, { received = true, ignored = "livemode" })
  end
  return dispatch(o, ev, req)
end

function M.handler(opts)
  local o = check_opts(opts, { secrets = true, store = true, tolerance = true, livemode = true, on_deauthorized = true,
                               on_event = true, max_body = true, event_ttl = true, event_lease = true,
                               log = true, metrics = true, event = true }, "webhook.handler")
  o = {
    secrets = check_secrets(o.secrets, "webhook.handler"),
    store = o.store, tolerance = o.tolerance or M.DEFAULT_TOLERANCE, livemode = o.livemode,
    on_deauthorized = o.on_deauthorized, on_event = o.on_event,
    max_body = o.max_body or M.DEFAULT_MAX_BODY, event_ttl = o.event_ttl or M.DEFAULT_EVENT_TTL,
    event_lease = o.event_lease or M.DEFAULT_EVENT_LEASE,
    log = o.log or util.stderr_log, metrics = o.metrics or require("stripe_connect.metrics"),
    event = o.event or function() end,
  }
  check_handler_options(o)
  o.leased = o.store.claim_event ~= nil and o.store.finish_event ~= nil
  o.verify_opts = { tolerance = o.tolerance }
  local log = o.log
  o.log = function(msg) log("webhook: " .. util.redact(msg, o.secrets)) end
  return function(req) return receive(o, req) end
end

return M
