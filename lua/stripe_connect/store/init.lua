-- stripe_connect.store — the storage-hook interface and `store.open(url)`.
--
-- A store is any table with these methods (the memory and SQLite stores
-- implement them, and the PostgreSQL store; a platform may pass its own table).
-- Runtime failures answer `nil, message`; misuse raises.
--
-- Accounts.  An account is a plain table:
--   { id = "acct_…", status = "connected" | "disconnected", scope = "read_write",
--     livemode = false, token_type, access_token, refresh_token,
--     stripe_publishable_key, connected_at, updated_at, disconnected_at (Unix s),
--     disconnect_reason, owner (the platform user's id, policy hook `owner`),
--     …any other plain fields (kept as-is) }
--   status is "onboarding" too for an Account Links account not finished yet.
--   store:put_account(a)                -> true          insert or replace by id
--   store:get_account(id)               -> a | nil
--   store:list_accounts()               -> { a, … }      newest connected_at first
--   store:accounts_of(owner)            -> { a, … }      the accounts whose `owner` is
--                                          owner (optional; the admin filter
--                                          scans list_accounts without it)
--   store:mark_disconnected(id, reason) -> true | false  (false: no such account);
--                                          status "disconnected", tokens wiped
--   store:delete_account(id)            -> true | false
--   store:account_counts()              -> { connected = n, disconnected = m }
--                                          (optional; /metrics lists accounts without it)
--
-- Flows (one-time OAuth state; the nonce comes from the state token).
--   store:claim_flow(nonce, expires_at) -> true                  first claim
--                                       | false, outcome|nil     already claimed:
--                                         the recorded outcome, or nil while the
--                                         first claimant is still working
--     Must be atomic across every process sharing the store.
--   store:record_outcome(nonce, outcome) -> true   (outcome: plain table)
--   store:get_flow(nonce) -> { nonce, expires_at, claimed_at, outcome } | nil
--   store:expire(now)     -> number removed (flows past expires_at, events past ttl)
--   The admin page keeps its sessions ("admin-session:…") and failed sign-in
--   counts ("admin-signin:…") as flow rows too (stripe_connect.app): a store
--   must keep a flow row until its expires_at, whatever its key.
--
-- Webhook events.
--   store:event_once(event_id, ttl_seconds) -> true the first time, false for a
--     duplicate seen within ttl_seconds (the id counts as processed from the
--     claim on: a process that dies before applying the event loses it)
--   store:forget_event(event_id) -> true   (optional) release an id whose
--     processing failed, so Stripe's retry runs it again
--   store:claim_event(event_id, lease_seconds) -> "first" | "processing" | "done"
--     (optional, with finish_event; the webhook handler prefers the pair)
--     "first": claimed now, held for lease_seconds, not processed yet;
--     "processing": another delivery holds a claim whose lease has not passed;
--     "done": processed (finish_event or event_once) and still remembered.
--     An expired claim or an expired processed id is claimed again ("first"),
--     so a claim whose holder died passes with its lease.  Must be atomic
--     across every process sharing the store.
--   store:finish_event(event_id, ttl_seconds) -> true   (optional) the
--     claimed id is processed: remembered ttl_seconds
--
-- Operations.
--   store:ping()          -> true        (GET /ready)
--   store:close()
-- (Counters are not the store's: they live in process memory,
-- stripe_connect.metrics.)
local core = require "stripe_connect.core"
local util = require "stripe_connect.util"

local M = {}

-- Required methods; ping, account_counts and close are optional (without
-- ping /ready only checks the process).
M.METHODS = {
  "put_account", "get_account", "list_accounts", "mark_disconnected", "delete_account",
  "claim_flow", "record_outcome", "get_flow", "expire", "event_once",
}

-- open(url, opts) -> store | nil, message
--   "memory:"           a memory store (store/memory.lua): under `serve` the
--                       process's one, shared by all workers; elsewhere fresh
--   "sqlite:PATH"       an SQLite file (store/sqlite.lua); opts.busy_timeout (ms),
--                       opts.synchronous ("normal" | "full")
--   "postgres://user:pass@host:port/db" (or postgresql://…)  PostgreSQL
--                       (store/postgres.lua); opts.pool (connections per worker)
function M.open(url, opts)
  opts = util.check_opts(opts, { busy_timeout = true, synchronous = true, pool = true }, "store.open")
  if type(url) ~= "string" then error("store.open: url must be a string", 2) end
  if url == "memory:" or url == "memory" then
    return require("stripe_connect.store.memory").new{ name = core.serve_worker and "memory:" or nil }
  end
  local path = url:match("^sqlite:(.+)$")
  if path then
    path = path:gsub("^//", "")
    return require("stripe_connect.store.sqlite").open(path,
      { busy_timeout = opts.busy_timeout, synchronous = opts.synchronous })
  end
  if url:match("^postgres://.") or url:match("^postgresql://.") then
    return require("stripe_connect.store.postgres").open(url, { pool = opts.pool })
  end
  return nil, "unknown store URL (use sqlite:PATH, postgres://… or memory:)"
end

-- check(store) -> store | nil, message: a user-supplied store has every method.
function M.check(s)
  if type(s) ~= "table" then return nil, "a store must be a table" end
  local missing = {}
  for _, m in ipairs(M.METHODS) do
    if type(s[m]) ~= "function" then missing[#missing + 1] = m end
  end
  if #missing > 0 then return nil, "the store lacks: " .. table.concat(missing, ", ") end
  return s
end

return M
