-- spec/support/apps/store_app.lua — the SQLite store alone behind
-- `stripe-connect serve`, for store_thread_spec: POST /accounts/ID stores an
-- account, GET /accounts/ID reads it back, GET /stats answers the database
-- thread's {"jobs":n,"commits":m}, GET /ping answers without the store.
-- The database is $STORE_PATH.
local cjson = require "cjson.safe"
local store_mod = require "stripe_connect.store"

local store = assert(store_mod.open("sqlite:" .. assert(os.getenv("STORE_PATH"), "STORE_PATH is not set")))

local function json(status, value)
  return { status = status, headers = { ["Content-Type"] = "application/json" }, body = assert(cjson.encode(value)) }
end

return {
  { "POST", "^/accounts/(acct_%w+)$", function(req)
    local ok, err = store:put_account{ id = req.params[1], scope = "read_write", connected_at = os.time() }
    if not ok then return json(503, { error = err }) end
    return json(200, { stored = req.params[1] })
  end },
  { "GET", "^/accounts/(acct_%w+)$", function(req)
    local a = store:get_account(req.params[1])
    if not a then return json(404, { error = "not_found" }) end
    return json(200, { id = a.id })
  end },
  { "GET", "/stats", function() return json(200, store.db:stats()) end },
  { "GET", "/ping", function() return json(200, { ok = true }) end },
}
