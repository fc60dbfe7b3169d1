-- stripe_connect.fake.faults — injected faults: POST|DELETE /__fake/faults
-- (the OAuth endpoints) and /__fake/fail (/v1 paths, before or after the
-- request runs) queue a status and/or a delay for the next calls to a path;
-- Fake:fault and Fake:v1_fault consume them.  Methods of the fake, mixed in
-- by stripe_connect.fake.
local core = require "stripe_connect.core"
local http = require "stripe_connect.fake.http"

local json, single, stripe_error = http.json, http.single, http.stripe_error

local Fake = {}

-- Takes one use of the queued fault f (the i-th; dropped after its last use)
-- and sleeps its delay.
local function consume(self, i, f)
  f.count = f.count - 1
  if f.count <= 0 then table.remove(self.faults, i) end
  if f.delay and f.delay > 0 then (self.config.sleep or core.sleep)(f.delay) end
end

-- Consumes the first injected fault for path: sleeps its delay, then answers
-- its status (nil when the fault is a delay only or none is queued).
function Fake:fault(path)
  for i, f in ipairs(self.faults) do
    if f.path == "*" or f.path == path then
      consume(self, i, f)
      if f.status then
        return json(f.status, f.body or { error = { type = "api_error", message = "Injected fault." } })
      end
      return nil
    end
  end
end

-- Consumes the first /v1 fault matching path at moment `when` ("before"
-- or "after"): sleeps its delay, then answers its status (nil: delay only).
function Fake:v1_fault(path, when)
  for i, f in ipairs(self.faults) do
    local match = f.path == path or (f.path:sub(-1) == "*" and path:sub(1, #f.path - 1) == f.path:sub(1, -2))
    if f.path:sub(1, 4) == "/v1/" and match and (f.when or "before") == when then
      consume(self, i, f)
      if not f.status then return nil end
      local answer
      if f.body then
        answer = json(f.status, f.body)
      elseif f.status == 429 then
        answer = stripe_error(429, "invalid_request_error", "Too many requests hit the API too quickly.", "rate_limit")
      elseif f.status == 409 then
        answer = stripe_error(409, "invalid_request_error", "This object cannot be accessed right now " ..
          "because another API request or Stripe process is currently accessing it.", "lock_timeout")
      else
        answer = stripe_error(f.status, "api_error", "Injected fault.")
      end
      if f.should_retry then answer.headers["Stripe-Should-Retry"] = f.should_retry end
      return answer
    end
  end
end

-- POST /__fake/faults: path (default "*": any OAuth endpoint), status
-- (answered instead of the real answer), delay (seconds slept first),
-- count (default 1), body.  DELETE clears them.
function Fake:faults_control(req)
  if req.method == "DELETE" then
    self.faults = {}
    return json(200, { faults = 0 })
  end
  local form = http.form_of(req)
  if not form then return json(400, { error = "invalid_request", error_description = "Malformed form body." }) end
  local f = {
    path = single(form, "path") or "*",
    status = tonumber(single(form, "status") or ""),
    delay = tonumber(single(form, "delay") or ""),
    count = tonumber(single(form, "count") or "1"),
    body = single(form, "body"),
    when = single(form, "when"),
    should_retry = single(form, "should_retry"),
  }
  local paths = { ["*"] = true, ["/oauth/token"] = true, ["/oauth/deauthorize"] = true }
  local v1 = f.path:match("^/v1/[%w_/%-]*%*?$") ~= nil
  if (f.when and (not v1 or (f.when ~= "before" and f.when ~= "after"))) or
     (f.should_retry and f.should_retry ~= "true" and f.should_retry ~= "false") then
    return json(400, { error = "invalid_request", error_description = "when (before|after) and should_retry " ..
      "(true|false) apply to /v1 paths only" })
  end
  if not (paths[f.path] or v1) or (f.status and (f.status < 100 or f.status > 599 or f.status % 1 ~= 0)) or
     (f.delay and (f.delay < 0 or f.delay > 120)) or not f.count or f.count < 1 or
     (not f.status and not f.delay) then
    return json(400, { error = "invalid_request",
      error_description = "give status (100-599) and/or delay (0-120 s); count >= 1; " ..
        "path *, /oauth/token, /oauth/deauthorize, or a /v1/ path (a trailing * matches a prefix)" })
  end
  self.faults[#self.faults + 1] = f
  return json(200, { faults = #self.faults })
end

return Fake
