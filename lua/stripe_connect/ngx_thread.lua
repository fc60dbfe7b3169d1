-- stripe_connect.ngx_thread — the store's side of the nginx path: runs in
-- nginx's thread pool (`ngx.run_worker_thread`, one Lua VM per pool thread),
-- so SQLite's locks and disk writes never hold an nginx worker.
--
--   call(url, method, ...) -> true, results… | false, message
--
-- Each pool thread opens the store of `url` (store.open, the host's SQLite
-- store, unchanged) on its first call and keeps it; the core's registry
-- gives every pool thread of one worker process the same connection and
-- database thread per file.  The calls are the store interface's methods
-- (store/init.lua).  A store method that raises answers
-- false and its message.
local M = {}

local stores = {}

function M.call(url, method, ...)
  local s = stores[url]
  if not s then
    local err
    s, err = require("stripe_connect.store").open(url)
    if not s then return false, err end
    stores[url] = s
  end
  local fn = s[method]
  if type(fn) ~= "function" then return false, "the store has no method " .. tostring(method) end
  return pcall(fn, s, ...)
end

return M
