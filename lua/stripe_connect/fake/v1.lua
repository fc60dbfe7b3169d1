-- stripe_connect.fake.v1 — what every /v1 (API) endpoint of the fake goes
-- through: Fake:v1(handler) wraps an endpoint with the /v1 faults,
-- authentication, idempotency and the /__fake/api_requests log.  The
-- endpoints themselves are in fake/accounts.lua and fake/customers.lua.
-- Methods of the fake, mixed in by stripe_connect.fake.
--
-- The API calls a platform makes as itself or as a connected account:
-- /v1/account, /v1/accounts (create, retrieve), /v1/account_links (with a
-- hosted onboarding page under /setup/s/), /v1/customers (create, list,
-- retrieve).  Authentication as Stripe's: the platform key (Bearer or
-- Basic) with an optional `Stripe-Account`, or a connected account's access
-- token.  An account the platform is not connected to answers 403.  POSTs
-- honour `Idempotency-Key` per acting account: the same key and body answer
-- the first answer again (`Idempotent-Replayed: true`), the same key with
-- another body or path answers 400 idempotency_error.  Faults for /v1 paths
-- (/__fake/fail) may apply before the request runs or after it (the work is
-- done, the answer lost).
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"
local http = require "stripe_connect.fake.http"

local stripe_error, no_access, random_id = http.stripe_error, http.no_access, http.random_id

local Fake = {}

-- v1_auth(req) -> acting account id (false: the platform), livemode | nil, answer
function Fake:v1_auth(req)
  local key = http.presented_key(req, nil)
  if not key then return nil, nil, stripe_error(401, "invalid_request_error", "You did not provide an API key.") end
  local target = req.headers and req.headers["stripe-account"]
  if target == "" then target = nil end
  local livemode
  for _, k in ipairs(self.keys) do
    if core.equal(key, k.key) then livemode = k.livemode end
  end
  if livemode == nil then
    local t = self.tokens[key]
    if not t or t.kind ~= "access" or t.revoked then
      return nil, nil, stripe_error(401, "invalid_request_error", "Invalid API Key provided.")
    end
    if target and target ~= t.account then return nil, nil, no_access(target) end
    target, livemode = t.account, t.livemode
  end
  if not target then return false, livemode end
  local c = self.connections[target]
  if not c or not c.connected then return nil, nil, no_access(target) end
  return target, livemode
end

-- v1(handler) -> a route handler: faults, authentication, idempotency,
-- and the /__fake/api_requests log.  handler(self, req, form, acting,
-- livemode, captures…) (the route's req.params).
function Fake:v1(handler)
  return function(req)
    local rec = { method = req.method, path = req.path, account = req.headers and req.headers["stripe-account"] }
    local key = req.headers and req.headers["idempotency-key"]
    rec.idempotency_key = key
    local answer = self:v1_fault(req.path, "before")
    if answer then rec.fault = true end
    local acting, livemode, denied
    if not answer then
      acting, livemode, denied = self:v1_auth(req)
      answer = denied
    end
    local slot, fingerprint
    if not answer and req.method == "POST" and key and key ~= "" then
      slot = (acting or "platform") .. "\0" .. key
      fingerprint = req.method .. " " .. req.path .. "\0" .. (req.body or "")
      local seen = self.idempotency[slot]
      if seen and seen.fingerprint ~= fingerprint then
        answer = stripe_error(400, "idempotency_error", "Keys for idempotent requests can only be used with the " ..
          "same parameters they were first used with. Try using a key other than '" .. key ..
          "' if you meant to execute a different request.")
      elseif seen then
        answer = util.copy(seen.answer)
        answer.headers["Idempotent-Replayed"] = "true"
        rec.replayed = true
      end
    end
    if not answer then
      local form = core.parse_form(req.body or "") or nil
      if not form then
        answer = stripe_error(400, "invalid_request_error", "Malformed form body.")
      else
        answer = handler(self, req, form, acting, livemode, (table.unpack or unpack)(req.params or {}))
      end
      answer.headers["Request-Id"] = random_id("req_", 7)
      if slot and answer.status < 500 then
        self.idempotency[slot] = { fingerprint = fingerprint, answer = util.copy(answer) }
      end
      if key and key ~= "" then answer.headers["Idempotency-Key"] = key end
      local late = self:v1_fault(req.path, "after")
      if late then answer, rec.fault = late, true end
    end
    if acting then answer.headers["Stripe-Account"] = acting end
    rec.status = answer.status
    self.api_requests[#self.api_requests + 1] = rec
    return answer
  end
end

return Fake
