-- stripe_connect.store.memory — the store interface (see store/init.lua) in
-- plain Lua tables.  For specs and throwaway runs: nothing survives the
-- process, and under `stripe-connect serve --workers N` each worker has its
-- own copy (use SQLite or your own store to share state between workers).
-- Values go in and come out as copies, so callers cannot alias its rows.
local util = require "stripe_connect.util"

local copy = util.copy

local Memory = {}
Memory.__index = Memory

local M = {}

-- new() -> an empty memory store.
function M.new()
  return setmetatable({ accounts = {}, flows = {}, events = {}, counter_values = {}, kind = "memory" }, Memory)
end

function Memory:ping() return true end
function Memory:close() return true end

-- ------------------------------------------------------------- accounts
function Memory:put_account(a)
  assert(type(a) == "table" and type(a.id) == "string" and a.id ~= "", "put_account: account with an id expected")
  local row = copy(a)
  row.status = row.status or "connected"
  row.updated_at = row.updated_at or os.time()
  self.accounts[a.id] = row
  return true
end

function Memory:get_account(id)
  return copy(self.accounts[id])
end

function Memory:list_accounts()
  local list = {}
  for _, a in pairs(self.accounts) do list[#list + 1] = copy(a) end
  table.sort(list, function(x, y)
    local cx, cy = x.connected_at or 0, y.connected_at or 0
    if cx ~= cy then return cx > cy end
    return x.id < y.id
  end)
  return list
end

function Memory:account_counts()
  local out = {}
  for _, a in pairs(self.accounts) do out[a.status] = (out[a.status] or 0) + 1 end
  return out
end

function Memory:mark_disconnected(id, reason)
  local a = self.accounts[id]
  if not a then return false end
  a.status = "disconnected"
  a.access_token, a.refresh_token, a.stripe_publishable_key = nil, nil, nil
  a.disconnect_reason = reason
  a.disconnected_at = os.time()
  a.updated_at = a.disconnected_at
  return true
end

function Memory:delete_account(id)
  if not self.accounts[id] then return false end
  self.accounts[id] = nil
  return true
end

-- ---------------------------------------------------------------- flows
function Memory:claim_flow(nonce, expires_at)
  assert(type(nonce) == "string" and nonce ~= "", "claim_flow: nonce expected")
  local f = self.flows[nonce]
  if f then return false, copy(f.outcome) end
  self.flows[nonce] = { nonce = nonce, expires_at = expires_at, claimed_at = os.time() }
  return true
end

function Memory:record_outcome(nonce, outcome)
  local f = self.flows[nonce]
  if not f then return nil, "no such flow" end
  f.outcome = copy(outcome)
  return true
end

function Memory:get_flow(nonce)
  return copy(self.flows[nonce])
end

function Memory:expire(now)
  now = now or os.time()
  local n = 0
  for k, f in pairs(self.flows) do
    if f.expires_at < now then self.flows[k] = nil; n = n + 1 end
  end
  for k, e in pairs(self.events) do
    if e < now then self.events[k] = nil; n = n + 1 end
  end
  return n
end

-- --------------------------------------------------------------- events
function Memory:event_once(event_id, ttl_seconds)
  assert(type(event_id) == "string" and event_id ~= "", "event_once: event id expected")
  local now = os.time()
  local until_ = self.events[event_id]
  if until_ and until_ >= now then return false end
  self.events[event_id] = now + (ttl_seconds or 72 * 3600)
  return true
end

function Memory:forget_event(event_id)
  self.events[event_id] = nil
  return true
end

-- ------------------------------------------------------------- counters
function Memory:incr(name, n)
  self.counter_values[name] = (self.counter_values[name] or 0) + (n or 1)
  return true
end

function Memory:counters()
  return copy(self.counter_values)
end

return M
