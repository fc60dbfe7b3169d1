-- stripe_connect.fake.customers — POST /v1/customers, GET /v1/customers
-- (newest first, limit, starting_after, has_more) and
-- GET /v1/customers/{id}, kept per acting account (self.objects[account or
-- "platform"].customers).  Methods of the fake, mixed in by
-- stripe_connect.fake; wrapped by Fake:v1 (fake/v1.lua).
local cjson = require "cjson.safe"
local http = require "stripe_connect.fake.http"

local json, single, stripe_error = http.json, http.single, http.stripe_error

local Fake = {}

-- A customer's JSON: metadata is an object even when empty.
local function customer_json(c)
  return (cjson.encode(c):gsub('"metadata":%[%]', '"metadata":{}'))
end

local function customer_of(self, id, owner)
  local bucket = self.objects[owner]
  for _, c in ipairs(bucket and bucket.customers or {}) do
    if c.id == id then return c end
  end
end

-- POST /v1/customers: email, name, description, metadata[…].
function Fake:v1_customers_create(req, form, acting, livemode)
  local owner = acting or "platform"
  self.objects[owner] = self.objects[owner] or { customers = {} }
  local metadata = {}
  for k, v in pairs(form) do
    local name = k:match("^metadata%[([^%]]+)%]$")
    if name then metadata[name] = type(v) == "table" and v[#v] or v end
  end
  local c = { id = http.random_id("cus_", 7), object = "customer", created = self:now(), livemode = livemode,
    email = single(form, "email") or cjson.null, name = single(form, "name") or cjson.null,
    description = single(form, "description") or cjson.null, metadata = metadata }
  table.insert(self.objects[owner].customers, c)
  return json(200, customer_json(c))
end

-- GET /v1/customers
function Fake:v1_customers_list(req, form, acting)
  local args = http.args_of(req)
  local limit = tonumber(single(args, "limit") or "10")
  if not limit or limit < 1 or limit > 100 or limit % 1 ~= 0 then
    return stripe_error(400, "invalid_request_error", "Invalid integer: limit must be between 1 and 100", nil, "limit")
  end
  local all = {}
  local bucket = self.objects[acting or "platform"]
  local customers = bucket and bucket.customers or {}
  for i = #customers, 1, -1 do all[#all + 1] = customers[i] end -- newest first
  local start = 1
  local after = single(args, "starting_after")
  if after then
    start = nil
    for i, c in ipairs(all) do if c.id == after then start = i + 1 end end
    if not start then
      return stripe_error(400, "invalid_request_error", "No such customer: '" .. after .. "'", "resource_missing",
        "starting_after")
    end
  end
  local parts = {}
  for i = start, math.min(#all, start + limit - 1) do parts[#parts + 1] = customer_json(all[i]) end
  local has_more = start + limit - 1 < #all
  return json(200, '{"object":"list","url":"/v1/customers","has_more":' .. tostring(has_more) ..
    ',"data":[' .. table.concat(parts, ",") .. "]}")
end

-- GET /v1/customers/{id}
function Fake:v1_customers_retrieve(req, form, acting, livemode, id)
  local c = customer_of(self, id, acting or "platform")
  if not c then
    return stripe_error(404, "invalid_request_error", "No such customer: '" .. id .. "'", "resource_missing", "id")
  end
  return json(200, customer_json(c))
end

return Fake
