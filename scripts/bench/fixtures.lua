-- scripts/bench/fixtures.lua — the requests the bench's callback and webhook
-- rows send, made ahead of time so wrk only replays lines:
--
--   stripe-connect run scripts/bench/fixtures.lua states N OUT
--     N fresh (state, binding cookie) pairs minted with stripe_connect.state and
--     $STATE_SECRETS (the server's): lines "STATE BINDING"; each is a browser
--     that went through /connect once, so each callback claims a new nonce.
--   stripe-connect run scripts/bench/fixtures.lua webhooks N OUT [TYPES [ACCOUNTS [ID_PREFIX]]]
--     N events with unique ids evt_<ID_PREFIX, default bench><12 digits>
--     (stripe_connect.webhook_events.event, test mode) signed now with the first of
--     $STRIPE_WEBHOOK_SECRETS: lines "STRIPE-SIGNATURE<TAB>BODY".  TYPES and
--     ACCOUNTS are comma lists taken in turn (default account.updated, for
--     acct_1BenchAccount000).  A signature is accepted for 300 s, so make
--     them just before the rows that send them.
local state = require "stripe_connect.state"
local webhook = require "stripe_connect.webhook"
local webhook_events = require "stripe_connect.webhook_events"

local function usage()
  io.stderr:write("usage: fixtures.lua states N OUT | webhooks N OUT [TYPES [ACCOUNTS [ID_PREFIX]]]\n")
  os.exit(2)
end

local what, n, out = arg[1], tonumber(arg[2]), arg[3]
if not (what and n and n >= 1 and out) then usage() end
n = math.floor(n)

local f = assert(io.open(out, "wb"))
local buf, k = {}, 0
local function put(line)
  k = k + 1
  buf[k] = line
  if k == 4096 then f:write(table.concat(buf, "\n", 1, k), "\n"); k = 0 end
end

if what == "states" then
  local kr = assert(state.keyring(assert(os.getenv("STATE_SECRETS"), "STATE_SECRETS is not set")))
  local now = os.time()
  for _ = 1, n do
    local binding = state.new_binding()
    put(state.mint(kr, { binding = binding, now = now }) .. " " .. binding)
  end
elseif what == "webhooks" then
  local secrets = webhook.parse_secrets(os.getenv("STRIPE_WEBHOOK_SECRETS"))
  assert(secrets, "STRIPE_WEBHOOK_SECRETS is not set")
  local secret = secrets[1]
  local function list(s, default)
    local out = {}
    for item in (s or default):gmatch("[^,%s]+") do out[#out + 1] = item end
    return out
  end
  local kinds = list(arg[4], "account.updated")
  local accounts = list(arg[5], "acct_1BenchAccount000")
  local prefix = arg[6] or "bench"
  if not prefix:match("^[%w]+$") then usage() end
  local now = os.time()
  for i = 1, n do
    local body = webhook_events.event{ type = kinds[(i - 1) % #kinds + 1], account = accounts[(i - 1) % #accounts + 1],
                                created = now, id = string.format("evt_%s%012d", prefix, i), livemode = false }
    put(webhook.sign(body, secret, { timestamp = now }) .. "\t" .. body)
  end
else
  usage()
end
if k > 0 then f:write(table.concat(buf, "\n", 1, k), "\n") end
assert(f:close())
