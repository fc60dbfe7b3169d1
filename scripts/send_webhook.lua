-- scripts/send_webhook.lua — sign a Stripe event and POST it to a webhook
-- endpoint, offline (like `stripe trigger`, without Stripe).
--
--   stripe-connect run scripts/send_webhook.lua --url http://127.0.0.1:8080/webhooks \
--     --secret whsec_… --type account.application.deauthorized --account acct_…
--   stripe-connect run scripts/send_webhook.lua --url URL --file event.json
--
-- Options:
--   --url URL          endpoint (required)
--   --secret S         signing secret; repeat it or give "whsec_a,whsec_b" for one v1 per
--                      secret (rotation).  Default: env STRIPE_WEBHOOK_SECRETS (comma list)
--   --type TYPE        build a realistic event of this type (doc/PROTOCOL.md §6) …
--   --account ACCT     … for this connected account (top-level `account`)
--   --id EVT           … with this event id (default a random evt_…)
--   --livemode         … with livemode true
--   --file PATH        send this file's exact bytes instead (retries: send it twice)
--   --timestamp N      sign with this Unix time instead of now
--   --timeout S        total request timeout in seconds, over 0 (default 30)
-- Prints the response status and body.  Exit: 0 on 2xx, 1 otherwise, 2 on usage errors.
-- The secret is never printed.
local core = require "stripe_connect.core"
local webhook = require "stripe_connect.webhook"
local webhook_events = require "stripe_connect.webhook_events"

local USAGE = [[
usage: send_webhook.lua --url URL [--secret whsec_…]... (--type TYPE [--account acct_…] [--id evt_…]
                        [--livemode] | --file EVENT.json) [--timestamp N] [--timeout S]
  secrets default to $STRIPE_WEBHOOK_SECRETS (comma-separated)]]

local function usage(msg)
  if msg then io.stderr:write("send_webhook: ", msg, "\n") end
  io.stderr:write(USAGE, "\n")
  os.exit(2)
end

local VALUED = { url = true, secret = true, type = true, account = true, id = true, file = true,
                 timestamp = true, timeout = true }
local FLAGS = { livemode = true, help = true }

-- parse(argv) -> options table; usage errors exit 2.
local function parse(argv)
  local o = { secrets = {} }
  local i = 1
  while i <= #argv do
    local name = argv[i]:match("^%-%-([%w_-]+)$")
    if name and FLAGS[name] then
      o[name] = true
      i = i + 1
    elseif name and VALUED[name] then
      local v = argv[i + 1]
      if v == nil then usage("--" .. name .. " needs a value") end
      if name == "secret" then
        for _, s in ipairs(webhook.parse_secrets(v) or {}) do o.secrets[#o.secrets + 1] = s end
      elseif o[name] ~= nil then
        usage("--" .. name .. " given twice")
      else
        o[name] = v
      end
      i = i + 2
    else
      usage("unknown argument: " .. argv[i])
    end
  end
  if o.help then
    io.stdout:write(USAGE, "\n")
    os.exit(0)
  end
  return o
end

local function check(o)
  if not o.url then usage("--url is required") end
  if not o.url:match("^https?://") then usage("--url must be http:// or https://") end
  if #o.secrets == 0 then o.secrets = webhook.parse_secrets(os.getenv("STRIPE_WEBHOOK_SECRETS")) or {} end
  if #o.secrets == 0 then usage("no secret: pass --secret or set STRIPE_WEBHOOK_SECRETS") end
  if (o.file ~= nil) == (o.type ~= nil) then usage("give exactly one of --type and --file") end
  if o.file and (o.account or o.id or o.livemode) then usage("--account, --id and --livemode go with --type") end
  if o.timestamp then
    local n = tonumber(o.timestamp)
    if not n or n < 0 or n > webhook.MAX_TIMESTAMP or n ~= math.floor(n) then
      usage("--timestamp must be a whole number of seconds (0 to " .. webhook.MAX_TIMESTAMP .. ")")
    end
    o.timestamp = n
  end
  if o.timeout then
    local n = tonumber(o.timeout)
    if not n or not (n > 0 and n <= 86400) then usage("--timeout must be a number of seconds over 0 (at most 86400)") end
    o.timeout = n
  end
end

local function payload(o)
  if o.file then
    local f, err = io.open(o.file, "rb")
    if not f then usage("cannot read --file: " .. tostring(err)) end
    local body = f:read("*a")
    f:close()
    return body
  end
  local body, ev = webhook_events.event { type = o.type, account = o.account, id = o.id, livemode = o.livemode }
  io.stderr:write(string.format("send_webhook: event %s (%s)\n", ev.id, ev.type))
  return body
end

local function main(argv)
  local o = parse(argv)
  check(o)
  local body = payload(o)
  local res, err, code = core.http_request {
    method = "POST", url = o.url, body = body, timeout = o.timeout or 30,
    headers = {
      ["Content-Type"] = "application/json; charset=utf-8",
      ["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
      ["Stripe-Signature"] = webhook.sign(body, o.secrets, { timestamp = o.timestamp }),
    },
  }
  if not res then
    io.stderr:write(string.format("send_webhook: %s (%s)\n", tostring(err), tostring(code)))
    return 1
  end
  io.stdout:write(tostring(res.status), "\n", res.body or "", "\n")
  return (res.status >= 200 and res.status < 300) and 0 or 1
end

os.exit(main(arg or {}))
