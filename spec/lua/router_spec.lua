-- stripe_connect.router: exact paths and patterns (captures in req.params),
-- order, "*" and HEAD on GET, 404 / 405 with Allow and their hooks, body
-- limits, the checks of a routes table, and app() (what APP.lua returns).
-- Plain Lua: no core, no host.
local lu = require "luaunit"
local router = require "stripe_connect.router"

local function echo(name)
  return function(req) return { status = 200, body = name, params = req.params } end
end

local function req(method, path) return { method = method, path = path } end

local TestRouter = {}

function TestRouter.test_exact_and_pattern_with_captures()
  local dispatch = router.new{
    { "GET", "/a", echo("a") },
    { "GET", "^/acct/(acct_%w+)/(%d+)$", echo("acct") },
    { "GET", "^/plain/%d+$", echo("plain") },
  }
  local r = dispatch(req("GET", "/a"))
  lu.assertEquals(r.body, "a")
  lu.assertEquals(r.params, {})
  r = dispatch(req("GET", "/acct/acct_12/7"))
  lu.assertEquals(r.body, "acct")
  lu.assertEquals(r.params, { "acct_12", "7" })
  r = dispatch(req("GET", "/plain/42"))
  lu.assertEquals(r.body, "plain")
  lu.assertEquals(r.params, {})
  lu.assertEquals(dispatch(req("GET", "/a/")).status, 404)
end

function TestRouter.test_first_route_wins_and_any_method()
  local dispatch = router.new{
    { "GET", "/x", echo("first") },
    { "GET", "/x", echo("second") },
    { "*", "^/any", echo("any") },
  }
  lu.assertEquals(dispatch(req("GET", "/x")).body, "first")
  lu.assertEquals(dispatch(req("DELETE", "/anything")).body, "any")
  -- a path served under another method, then by "*": the "*" route answers
  lu.assertEquals(dispatch(req("POST", "/x")).status, 405)
end

function TestRouter.test_405_with_allow_and_head_on_get()
  local dispatch = router.new{
    { "GET", "/r", echo("get") },
    { "PUT", "/r", echo("put") },
  }
  local r = dispatch(req("POST", "/r"))
  lu.assertEquals(r.status, 405)
  lu.assertEquals(r.headers.Allow, "GET, PUT")
  lu.assertEquals(r.headers["Content-Type"], "text/plain; charset=utf-8")
  lu.assertEquals(r.body, "405 Method Not Allowed\n")
  lu.assertEquals(dispatch(req("HEAD", "/r")).body, "get")
  local strict = router.new({ { "GET", "/r", echo("get") } }, { head_is_get = false })
  lu.assertEquals(strict(req("HEAD", "/r")).status, 405)
end

function TestRouter.test_404_and_hooks()
  local plain = router.new{ { "GET", "/r", echo("r") } }
  local r = plain(req("GET", "/nosuch"))
  lu.assertEquals(r.status, 404)
  lu.assertEquals(r.body, "404 Not Found\n")
  local routes = { { "GET", "/r", echo("r") } }
  routes.not_found = function(q) return { status = 404, body = "styled " .. q.path } end
  lu.assertEquals(router.new(routes)(req("GET", "/n")).body, "styled /n")
  local hooked = router.new({ { "GET", "/r", echo("r") } }, {
    not_found = function() return { status = 404, body = "json 404" } end,
    method_not_allowed = function(q, allowed) return { status = 405, body = q.method .. " " .. allowed[1] } end,
  })
  lu.assertEquals(hooked(req("GET", "/n")).body, "json 404")
  lu.assertEquals(hooked(req("POST", "/r")).body, "POST GET")
end

function TestRouter.test_body_limits()
  local _, limit = router.new{
    { "GET", "/g", echo("g") },
    { "POST", "/p", echo("p") },
    { "POST", "/small", echo("s"), max_body = 10 },
    { "GET", "/big", echo("b"), max_body = 5 },
  }
  lu.assertEquals(limit("GET", "/g"), 0)
  lu.assertEquals(limit("HEAD", "/g"), 0)
  lu.assertEquals(limit("POST", "/p"), -1)
  lu.assertEquals(limit("POST", "/small"), 10)
  lu.assertEquals(limit("GET", "/big"), 5)
  lu.assertEquals(limit("POST", "/g"), 0)
  lu.assertEquals(limit("GET", "/nosuch"), 0)
end

function TestRouter.test_bad_routes_tables()
  lu.assertErrorMsgEquals("route 2: expected { METHOD, PATH, handler }", router.new,
    { { "GET", "/a", echo("a") }, { "GET", "/b" } })
  lu.assertErrorMsgEquals("route 1: expected { METHOD, PATH, handler }", router.new, { "GET" })
  lu.assertErrorMsgEquals("route 1: max_body must be a whole number of bytes", router.new,
    { { "POST", "/a", echo("a"), max_body = 1.5 } })
  lu.assertErrorMsgEquals("route 1: max_body must be a whole number of bytes", router.new,
    { { "POST", "/a", echo("a"), max_body = -1 } })
  local routes = { { "GET", "/a", echo("a") } }
  routes.not_found = "page"
  lu.assertErrorMsgEquals("routes.not_found must be a function", router.new, routes)
end

function TestRouter.test_app()
  local f = function() end
  local dispatch, limit = router.app(f)
  lu.assertIs(dispatch, f)
  lu.assertNil(limit)
  dispatch, limit = router.app{ { "GET", "/a", echo("a") } }
  lu.assertEquals(dispatch(req("GET", "/a")).body, "a")
  lu.assertEquals(limit("GET", "/a"), 0)
  lu.assertErrorMsgEquals("APP.lua returned an empty routes table", router.app, {})
  lu.assertErrorMsgEquals("APP.lua must return a handler function or a routes table, not string",
    router.app, "x")
end

return { TestRouter = TestRouter }
