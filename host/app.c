/*
 * app.c — a worker's lua_State: loading APP.lua, the router, and running
 * each request as a coroutine.
 *
 * APP.lua returns a handler function or a routes table (see ROUTER below);
 * the router and the request/response conversion are Lua (policy), the
 * coroutine bookkeeping is C.  A request's coroutine is anchored in the
 * registry while it lives and found again through the registry (never a
 * kept lua_State*); its extra space points at its request_ctx so that the
 * yielding http_request/sleep (upstream.c) and the instruction-budget hook
 * find their request.  A handler that raises, returns garbage, yields on its
 * own or exceeds its instruction budget answers a generic 500; the
 * traceback goes to stderr, never to the client.
 */
#include <stdlib.h>
#include <string.h>

#include "worker.h"

#define HOOK_STEP 1000

/* (app, core) -> run(req) -> status, header lines, body.  Runs inside the
 * request coroutine, so its errors are the handler's errors. */
static const char router_lua[] =
"local app, core = ...\n"
"local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error\n"
"local find, lower, concat, unpack, mtype = string.find, string.lower, table.concat, table.unpack, math.type\n"
"local parse_query, parse_cookies = core.parse_query, core.parse_cookies\n"
"local TEXT = 'text/plain; charset=utf-8'\n"
"local dispatch\n"
"if type(app) == 'function' then\n"
"  dispatch = app\n"
"elseif type(app) == 'table' then\n"
"  local routes = {}\n"
"  for i, r in ipairs(app) do\n"
"    if type(r) ~= 'table' or type(r[1]) ~= 'string' or type(r[2]) ~= 'string' or r[3] == nil then\n"
"      error(('route %d: expected { METHOD, PATH, handler }'):format(i), 0)\n"
"    end\n"
"    routes[i] = { method = r[1], path = r[2], pattern = r[2]:sub(1, 1) == '^', handler = r[3] }\n"
"  end\n"
"  if #routes == 0 then error('APP.lua returned an empty routes table', 0) end\n"
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
"        if rm == '*' or rm == method or (method == 'HEAD' and rm == 'GET') then\n"
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
"    return { status = 404, headers = { ['Content-Type'] = TEXT }, body = '404 Not Found\\n' }\n"
"  end\n"
"else\n"
"  error('APP.lua must return a handler function or a routes table, not ' .. type(app), 0)\n"
"end\n"
"local framing = { ['content-length'] = true, ['connection'] = true, ['date'] = true,\n"
"                  ['transfer-encoding'] = true }\n"
"local function add(out, name, v)\n"
"  if type(v) ~= 'string' and type(v) ~= 'number' then\n"
"    error('response header ' .. name .. ' must be a string', 0)\n"
"  end\n"
"  v = tostring(v)\n"
"  if find(v, '[\\r\\n%z]') then error('response header ' .. name .. ' contains CR, LF or NUL', 0) end\n"
"  out[#out + 1] = name .. ': ' .. v .. '\\r\\n'\n"
"end\n"
"return function(req)\n"
"  local args, cookies = {}, {}\n"
"  if req.query ~= '' then\n"
"    args = parse_query(req.query)\n"
"    if not args then return 400, 'Content-Type: ' .. TEXT .. '\\r\\n', '400 Bad Request\\n' end\n"
"  end\n"
"  if req.headers.cookie then cookies = parse_cookies(req.headers.cookie) or {} end\n"
"  req.args, req.cookies = args, cookies\n"
"  local res = dispatch(req)\n"
"  if type(res) ~= 'table' then error('handler returned ' .. type(res) .. ', not a response table', 0) end\n"
"  local status, body, headers = res.status or 200, res.body or '', res.headers\n"
"  if mtype(status) ~= 'integer' or status < 200 or status > 599 then\n"
"    error('invalid response status ' .. tostring(status), 0)\n"
"  end\n"
"  if type(body) ~= 'string' then error('response body must be a string', 0) end\n"
"  local out = {}\n"
"  if headers ~= nil then\n"
"    if type(headers) ~= 'table' then error('response headers must be a table', 0) end\n"
"    for name, v in pairs(headers) do\n"
"      if type(name) ~= 'string' or not find(name, \"^[%w!#$%%&'*+.^_`|~-]+$\") then\n"
"        error('invalid response header name ' .. tostring(name), 0)\n"
"      end\n"
"      if not framing[lower(name)] then\n"
"        if type(v) == 'table' then\n"
"          for _, x in ipairs(v) do add(out, name, x) end\n"
"        else\n"
"          add(out, name, v)\n"
"        end\n"
"      end\n"
"    end\n"
"  end\n"
"  return status, concat(out), body\n"
"end\n";

static const char error_head[] = "Content-Type: text/plain; charset=utf-8\r\n";
static const char error_body[] = "500 Internal Server Error\n";

/* Protected part of app_load.  Stack: [-0, +1] (the runner). */
static int app_pload(lua_State *L)
{
    worker *w = lua_touserdata(L, 1);
    host_openlibs(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "stripe_connect.core");
    lua_call(L, 1, 1);
    upstream_install(L, w);                       /* core table stays at -1 */
    if (luaL_loadfile(L, w->opts->app) != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    if (luaL_loadbuffer(L, router_lua, sizeof router_lua - 1, "=router") != LUA_OK)
        return lua_error(L);
    lua_insert(L, -3);                            /* router, core, app */
    lua_insert(L, -2);                            /* router, app, core */
    lua_call(L, 2, 1);
    return 1;
}

/* Create the worker's state and load APP.lua into it; 0 or -1 with *errmsg
 * (malloc'd) set.  Runs on the main thread before the worker starts. */
int app_load(worker *w, char **errmsg)
{
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

static request_ctx *ctx_of(lua_State *co)
{
    return *(request_ctx **)lua_getextraspace(co);
}

/* Count hook: charge the request; over budget, raise on every instruction
 * from now on so that a pcall loop cannot swallow it. */
static void budget_hook(lua_State *co, lua_Debug *ar)
{
    (void)ar;
    request_ctx *ctx = ctx_of(co);
    if (ctx == NULL)
        return;
    ctx->budget -= HOOK_STEP;
    if (ctx->budget <= 0) {
        lua_sethook(co, budget_hook, LUA_MASKCOUNT, 1);
        lua_pushliteral(co, "request exceeded its instruction budget");
        lua_error(co);
    }
}

/* Push the request table onto co.  Stack(co): [-0, +1]. */
static void push_request(lua_State *co, const http_request *r)
{
    lua_createtable(co, 0, 10);
    lua_pushlstring(co, r->method, r->mlen);
    lua_setfield(co, -2, "method");
    lua_pushlstring(co, r->path, r->plen);
    lua_setfield(co, -2, "path");
    lua_pushlstring(co, r->query, r->qlen);
    lua_setfield(co, -2, "query");
    lua_pushlstring(co, r->body ? r->body : "", r->blen);
    lua_setfield(co, -2, "body");
    lua_pushstring(co, r->remote ? r->remote : "");
    lua_setfield(co, -2, "remote_addr");
    lua_pushinteger(co, r->remote_port);
    lua_setfield(co, -2, "remote_port");
    lua_createtable(co, 0, r->nheaders);
    for (int i = 0; i < r->nheaders; i++) {
        const http_header *h = &r->headers[i];
        luaL_Buffer b;
        luaL_buffinit(co, &b);
        for (size_t j = 0; j < h->nlen; j++) {
            char ch = h->name[j];
            luaL_addchar(&b, ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch);
        }
        luaL_pushresult(&b);
        lua_pushvalue(co, -1);
        lua_rawget(co, -3);
        if (lua_isnil(co, -1)) {
            lua_pop(co, 1);
            lua_pushlstring(co, h->value, h->vlen);
        } else {
            int cookie = strcmp(lua_tostring(co, -2), "cookie") == 0;
            lua_pushstring(co, cookie ? "; " : ", ");
            lua_pushlstring(co, h->value, h->vlen);
            lua_concat(co, 3);
        }
        lua_rawset(co, -3);
    }
    lua_setfield(co, -2, "headers");
}

static void ctx_unlink(request_ctx *ctx)
{
    worker *w = ctx->w;
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        w->ctxs = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
}

/* Drop a request's coroutine and context (the connection is not touched). */
static void ctx_free(request_ctx *ctx, lua_State *co)
{
    *(request_ctx **)lua_getextraspace(co) = NULL;
    lua_sethook(co, NULL, 0, 0);
    luaL_unref(ctx->w->L, LUA_REGISTRYINDEX, ctx->co_ref);
    ctx_unlink(ctx);
    free(ctx);
}

void app_handle(worker *w, conn *c, const http_request *r)
{
    lua_State *L = w->L;
    request_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        server_respond(c, 500, error_head, sizeof error_head - 1, error_body,
                       sizeof error_body - 1);
        return;
    }
    ctx->w = w;
    ctx->c = c;
    ctx->xfer_ref = LUA_NOREF;
    ctx->budget = w->opts->max_instructions;
    ctx->next = w->ctxs;
    if (w->ctxs)
        w->ctxs->prev = ctx;
    w->ctxs = ctx;
    lua_State *co = lua_newthread(L);
    ctx->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    *(request_ctx **)lua_getextraspace(co) = ctx;
    lua_sethook(co, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
    lua_rawgeti(co, LUA_REGISTRYINDEX, w->runner_ref);
    push_request(co, r);
    app_resume(ctx, 1);
}

/* Resume the request's coroutine with nargs values already pushed on it;
 * when it finishes, answer and free the context. */
void app_resume(request_ctx *ctx, int nargs)
{
    worker *w = ctx->w;
    lua_State *L = w->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->co_ref);
    lua_State *co = lua_tothread(L, -1);
    lua_pop(L, 1);
    int nres = 0;
    int status = lua_resume(co, L, nargs, &nres);
    if (status == LUA_YIELD && (ctx->easy != NULL || ctx->timer != NULL))
        return;                                   /* resumed by upstream.c */
    conn *c = ctx->c;
    const http_request *r = server_request(c);
    if (status == LUA_OK && nres == 3) {
        size_t hl, bl;
        int code = (int)lua_tointeger(co, -3);
        const char *head = lua_tolstring(co, -2, &hl);
        const char *body = lua_tolstring(co, -1, &bl);
        server_respond(c, code, head, hl, body, bl);
        ctx_free(ctx, co);
        return;
    }
    if (status == LUA_YIELD)
        lua_pushliteral(co, "handler yielded outside http_request/sleep");
    const char *msg = lua_tostring(co, -1);
    luaL_traceback(L, co, msg ? msg : "(error object is not a string)", 0);
    log_error("handler error: %.*s %.*s: %s", (int)r->mlen, r->method,
              (int)r->plen, r->path, lua_tostring(L, -1));
    lua_pop(L, 1);
    server_respond(c, 500, error_head, sizeof error_head - 1, error_body, sizeof error_body - 1);
    ctx_free(ctx, co);
}

/* Abort every request still running (shutdown deadline passed). */
void app_abort_all(worker *w)
{
    while (w->ctxs != NULL) {
        request_ctx *ctx = w->ctxs;
        upstream_cancel(ctx);
        lua_rawgeti(w->L, LUA_REGISTRYINDEX, ctx->co_ref);
        lua_State *co = lua_tothread(w->L, -1);
        lua_pop(w->L, 1);
        ctx_free(ctx, co);
    }
}

void app_close(worker *w)
{
    if (w->L != NULL)
        lua_close(w->L);
    w->L = NULL;
}
