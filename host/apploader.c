/*
 * apploader.c — a worker's lua_State: loading APP.lua and the router.
 *
 * APP.lua returns a handler function or a routes table (an array of
 * { METHOD, PATH, handler }, and optionally not_found = function(req) for
 * a path no route serves; default a plain 404); the router is the Lua
 * module stripe_connect.router (lua/stripe_connect/router.lua, its
 * app(value)), called by each request's coroutine through the runner
 * (runner.c, which makes the request table and converts the response
 * table).  What either raises on (a bad routes table at load; a
 * response that is not a table, a bad status, a header name that is not a
 * token, CR/LF/NUL in a header value) answers a generic 500 like any
 * handler error; the traceback goes to stderr, never to the client.
 */
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* Protected part of apploader_load.  Stack: [-0, +1] (the runner). */
static int apploader_pload(lua_State *L)
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
    /* The router is required before APP.lua, so what APP.lua does to
     * package.path cannot take it away. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "stripe_connect.router");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "app");
    lua_remove(L, -2);                            /* core, router.app */
    if (luaL_loadfile(L, w->opts->app) != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);                            /* core, router.app, app */
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
int apploader_load(worker *w, char **errmsg)
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
    *(request_run **)lua_getextraspace(L) = NULL;
    lua_pushcfunction(L, apploader_pload);
    lua_pushlightuserdata(L, w);
    if (host_docall(L, 1, 1) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        *errmsg = strdup(msg ? msg : "(error object is not a string)");
        return -1;
    }
    w->runner_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Protected part of apploader_body_limit.  Stack: [-2 (function, request), +1]. */
static int apploader_plimit(lua_State *L)
{
    const http_request *r = lua_touserdata(L, 2);
    lua_settop(L, 1);
    lua_pushlstring(L, r->method, r->mlen);
    lua_pushlstring(L, r->path, r->plen);
    lua_call(L, 2, 1);
    return 1;
}

size_t apploader_body_limit(worker *w, const http_request *r, size_t max)
{
    if (w->limit_ref == LUA_NOREF)
        return max;
    lua_State *L = w->L;
    lua_pushcfunction(L, apploader_plimit);
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

void apploader_close(worker *w)
{
    if (w->L != NULL)
        lua_close(w->L);
    w->L = NULL;
    free(w->head);
    w->head = NULL;
}
