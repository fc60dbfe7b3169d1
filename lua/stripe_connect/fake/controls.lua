-- stripe_connect.fake.controls — the test controls under /__fake/ that look
-- at or move the fake's state (not Stripe's): the connections (accounts),
-- the /v1 log (api_requests), the objects per acting account (objects) and
-- the clock.  The other controls live with their family: disconnect and
-- events in fake/webhooks.lua, faults and fail in fake/faults.lua,
-- accounts/{acct}/complete in fake/accounts.lua; requests (the log
-- Fake:recorded keeps) and reset are answered in fake.lua's routes.
-- Methods of the fake, mixed in by stripe_connect.fake.
local util = require "stripe_connect.util"
local http = require "stripe_connect.fake.http"

local json, single, list = http.json, http.single, http.list

local Fake = {}

-- GET /__fake/accounts: the connections.
function Fake:accounts_list()
  local items = {}
  for _, name in ipairs(util.sorted_keys(self.connections)) do
    local c = self.connections[name]
    items[#items + 1] = { id = c.account, connected = c.connected, scope = c.scope, livemode = c.livemode }
  end
  return list(items)
end

-- GET /__fake/api_requests: every /v1 call, in order.
function Fake:api_requests_list()
  return list(self.api_requests)
end

-- GET /__fake/objects: how many objects each acting account holds.
function Fake:objects_list()
  local items = {}
  for _, owner in ipairs(util.sorted_keys(self.objects)) do
    local ids = {}
    for i, c in ipairs(self.objects[owner].customers) do ids[i] = c.id end
    items[#items + 1] = { account = owner, customers = #ids, customer_ids = ids }
  end
  return list(items)
end

-- GET /__fake/clock shows it; POST advance=SECONDS moves it.
function Fake:clock(req)
  if req.method == "POST" then
    local form = http.form_of(req) or {}
    local advance = tonumber(single(form, "advance") or single(http.args_of(req), "advance") or "")
    if not advance or advance ~= advance or advance == math.huge or advance == -math.huge then
      return json(400, { error = "invalid_request", error_description = "advance=SECONDS is required" })
    end
    self.offset = self.offset + advance
  end
  return json(200, { now = self:now(), offset = self.offset })
end

return Fake
