-- spec/support/apps/pg_app.lua — the PostgreSQL store alone behind
-- `stripe-connect serve`, for store_postgres_spec: GET /sleep runs
-- pg_sleep(600) on a pooled connection (answers 503 and the error once the
-- spec cancels it), GET /ping asks the store, POST /accounts/ID stores an
-- account and GET /accounts/ID reads it back, GET /pid answers the process
-- id of a pooled connection's backend.  The database is $DATABASE.
local cjson = require "cjson.safe"
local store_mod = require "stripe_connect.store"

local store = assert(store_mod.open((assert(os.getenv("DATABASE"), "DATABASE is not set"))))

local function json(status, value)
  return { status = status, headers = { ["Content-Type"] = "application/json" }, body = assert(cjson.encode(value)) }
end

return {
  { "GET", "/sleep", function()
    local r, err = store:q("SELECT pg_sleep(600)")
    if not r then return json(503, { error = err }) end
    return json(200, { slept = true })
  end },
  { "GET", "/ping", function()
    local ok, err = store:ping()
    if not ok then return json(503, { error = err }) end
    return json(200, { ok = true })
  end },
  { "POST", "^/accounts/(acct_%w+)$", function(req)
    local ok, err = store:put_account{ id = req.params[1], scope = "read_write", connected_at = os.time() }
    if not ok then return json(503, { error = err }) end
    return json(200, { stored = req.params[1] })
  end },
  { "GET", "^/accounts/(acct_%w+)$", function(req)
    local a, err = store:get_account(req.params[1])
    if err then return json(503, { error = err }) end
    if not a then return json(404, { error = "not_found" }) end
    return json(200, { id = a.id })
  end },
}
