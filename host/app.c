/*
 * app.c — a worker's lua_State: loading APP.lua and the router.
 *
 * APP.lua returns a handler function or a routes table (an array of
 * { METHOD, PATH, handler }, and optionally not_found = function(req) for
 * a path no route serves; default a plain 404); the router is Lua
 * (policy, router_lua below), called by each request's coroutine through
 * the runner (runner.c, which makes the request table and converts the
 * response table).  What either raises on (a bad routes table at load; a
 * response that is not a table, a bad status, a header name that is not a
 * token, CR/LF/NUL in a header value) answers a generic 500 like any
 * handler error; the traceback goes to stderr, never to the client.
 */
#include <stdlib.h>
#include <string.h>

#include "worker.h"

/* app -> dispatch(req) -> res: the app itself, or a router over its routes
 * table.  Runs inside the request coroutine (runner.c calls it), so its
 * errors are the handler's errors. */
static const char router_lua[] =
"local app = ...\n"
"local type, ipairs, error = type, ipairs, error\n"
"local find, concat, unpack = string.find, table.concat, table.unpack\n"
"local TEXT = 'text/plain; charset=utf-8'\n"
"local dispatch, body_limit\n"
"if type(app) == 'function' then\n"
"  dispatch = app\n"
"elseif type(app) == 'table' then\n"
"  local routes = {}\n"
"  for i, r in ipairs(app) do\n"
"    if type(r) ~= 'table' or type(r[1]) ~= 'string' or type(r[2]) ~= 'string' or r[3] == nil then\n"
"      error(('route %d: expected { METHOD, PATH, handler }'):format(i), 0)\n"
"    end\n"
"    local mb = r.max_body\n"
"    if mb ~= nil and (math.type(mb) ~= 'integer' or mb < 0) then\n"
"      error(('route %d: max_body must be a whole number of bytes'):format(i), 0)\n"
"    end\n"
"    if mb == nil then mb = (r[1] == 'GET' or r[1] == 'HEAD') and 0 or -1 end\n"
"    routes[i] = { method = r[1], path = r[2], pattern = r[2]:sub(1, 1) == '^', handler = r[3],\n"
"                  max_body = mb }\n"
"  end\n"
"  if #routes == 0 then error('APP.lua returned an empty routes table', 0) end\n"
"  local function takes(rm, method)\n"
"    return rm == '*' or rm == method or (method == 'HEAD' and rm == 'GET')\n"
"  end\n"
"  body_limit = function(method, path)\n"
"    for i = 1, #routes do\n"
"      local r = routes[i]\n"
"      if (r.pattern and find(path, r.path) or r.path == path) and takes(r.method, method) then\n"
"        return r.max_body\n"
"      end\n"
"    end\n"
"    return 0\n"
"  end\n"
"  local not_found = app.not_found\n"
"  if not_found ~= nil and type(not_found) ~= 'function' then error('routes.not_found must be a function', 0) end\n"
"  dispatch = function(req)\n"
"    local path, method, allowed = req.path, req.method, nil\n"
"    for i = 1, #routes do\n"
"      local r, caps = routes[i], nil\n"
"      if r.pattern then\n"
"        local m = { find(path, r.path) }\n"
"        if m[1] then caps = { unpack(m, 3) } end\n"
"      elseif r.path == path then\n"
"        caps = {}\n"
"      end\n"
"      if caps then\n"
"        local rm = r.method\n"
"        if takes(rm, method) then\n"
"          req.params = caps\n"
"          return r.handler(req)\n"
"        end\n"
"        allowed = allowed or {}\n"
"        allowed[#allowed + 1] = rm\n"
"      end\n"
"    end\n"
"    if allowed then\n"
"      return { status = 405, headers = { ['Content-Type'] = TEXT, Allow = concat(allowed, ', ') },\n"
"               body = '405 Method Not Allowed\\n' }\n"
"    end\n"
"    if not_found then return not_found(req) end\n"
"    return { status = 404, headers = { ['Content-Type'] = TEXT }, body = '404 Not Found\\n' }\n"
"  end\n"
"else\n"
"  error('APP.lua must return a handler function or a routes table, not ' .. type(app), 0)\n"
"end\n"
"return dispatch, body_limit\n";

/* Protected part of app_load.  Stack: [-0, +1] (the runner). */
static int app_pload(lua_State *L)
{
    worker *w = lua_touserdata(L, 1);
    host_openlibs(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "stripe_connect.core");
    lua_call(L, 1, 1);
    upstream_install(L, w);                       /* core table stays at -1 */
    dbwait_install(L, w);
    pgwait_install(L, w);
    tasks_install(L, w);
    lua_pushinteger(L, w->id);                    /* the stores share per process under serve */
    lua_setfield(L, -2, "serve_worker");
    static const char *const formats[] = { "text", "logfmt", "json" };
    lua_pushstring(L, formats[w->opts->log_format]);  /* stripe_connect.log writes in it */
    lua_setfield(L, -2, "log_format");
    lua_pushstring(L, w->opts->app_name);
    lua_setfield(L, -2, "app_name");
    budget_install(L, w);                         /* before APP.lua runs */
    if (luaL_loadfile(L, w->opts->app) != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);                            /* core, app */
    if (luaL_loadbuffer(L, router_lua, sizeof router_lua - 1, "=router") != LUA_OK)
        return lua_error(L);
    lua_insert(L, -2);
    lua_call(L, 1, 2);                            /* core, dispatch, body_limit */
    if (lua_isnil(L, -1))
        lua_pop(L, 1);                            /* a handler function: --max-body-size */
    else
        w->limit_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -2, "parse_query");
    lua_getfield(L, -3, "parse_cookies");
    runner_push(L, w);                            /* core, runner */
    return 1;
}

/* Create the worker's state and load APP.lua into it; 0 or -1 with *errmsg
 * (malloc'd) set.  Runs on the main thread before the worker starts. */
int app_load(worker *w, char **errmsg)
{
    w->limit_ref = LUA_NOREF;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        *errmsg = strdup("cannot create state: not enough memory");
        return -1;
    }
    w->L = L;
    /* New threads copy the main thread's extra space: NULL means "not a
     * request coroutine" (its initial contents are unspecified). */
    *(request_ctx **)lua_getextraspace(L) = NULL;
    lua_pushcfunction(L, app_pload);
    lua_pushlightuserdata(L, w);
    if (host_docall(L, 1, 1) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        *errmsg = strdup(msg ? msg : "(error object is not a string)");
        return -1;
    }
    w->runner_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Protected part of app_body_limit.  Stack: [-2 (function, request), +1]. */
static int app_plimit(lua_State *L)
{
    const http_request *r = lua_touserdata(L, 2);
    lua_settop(L, 1);
    lua_pushlstring(L, r->method, r->mlen);
    lua_pushlstring(L, r->path, r->plen);
    lua_call(L, 2, 1);
    return 1;
}

size_t app_body_limit(worker *w, const http_request *r, size_t max)
{
    if (w->limit_ref == LUA_NOREF)
        return max;
    lua_State *L = w->L;
    lua_pushcfunction(L, app_plimit);
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->limit_ref);
    lua_pushlightuserdata(L, (void *)r);
    size_t limit = 0;
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        log_error("body limit: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    } else if (lua_isinteger(L, -1)) {
        lua_Integer v = lua_tointeger(L, -1);
        limit = v < 0 || (unsigned long long)v > max ? max : (size_t)v;
    }
    lua_pop(L, 1);
    return limit;
}

void app_close(worker *w)
{
    if (w->L != NULL)
        lua_close(w->L);
    w->L = NULL;
    free(w->head);
    w->head = NULL;
}
