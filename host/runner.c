/*
 * runner.c — the body of each request coroutine, in C: the request table,
 * req.args and req.cookies, the call into the app's dispatch (apploader.c), and
 * the response table's conversion into a status, header lines and a body.
 *
 * The runner is a C closure made once per worker (runner_push); coroutines.c
 * starts each request's coroutine on it with the parsed request as a light
 * userdata.  It calls dispatch with lua_callk, so a handler that yields
 * (http_request, sleep) resumes into run_done.  Every check of the response
 * contract raises as the Lua router did (same messages, no position), so a
 * bad response is a handler error: the traceback to stderr, a generic 500
 * to the client.  The header lines go to the worker's head buffer; the
 * runner returns (status, body) and coroutines.c answers with the buffer, so
 * nothing may run on the worker between the conversion and that answer
 * (nothing does: the conversion is the coroutine's last act).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve.h"

static const char text_head[] = "Content-Type: text/plain; charset=utf-8\r\n";
static const char bad_query_body[] = "400 Bad Request\n";

/* Push the request table.  Header names arrive lower-cased (request.c);
 * repeats are joined with "; " for cookie, else ", ".  Stack: [-0, +1]. */
static void push_request(lua_State *L, const http_request *r)
{
    lua_createtable(L, 0, 11);
    lua_pushlstring(L, r->method, r->mlen);
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, r->path, r->plen);
    lua_setfield(L, -2, "path");
    lua_pushlstring(L, r->query, r->qlen);
    lua_setfield(L, -2, "query");
    lua_pushlstring(L, r->body ? r->body : "", r->blen);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, r->remote ? r->remote : "");
    lua_setfield(L, -2, "remote_addr");
    lua_pushinteger(L, r->remote_port);
    lua_setfield(L, -2, "remote_port");
    if (r->ridlen > 0) {
        lua_pushlstring(L, r->request_id, r->ridlen);
        lua_setfield(L, -2, "request_id");
    }
    lua_createtable(L, 0, r->nheaders);
    for (int i = 0; i < r->nheaders; i++) {
        const http_header *h = &r->headers[i];
        lua_pushlstring(L, h->name, h->nlen);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) != LUA_TNIL) {
            int cookie = h->nlen == 6 && memcmp(h->name, "cookie", 6) == 0;
            lua_pushstring(L, cookie ? "; " : ", ");
            lua_pushlstring(L, h->value, h->vlen);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value, h->vlen);
        }
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "headers");
}

/* Append s[0..n) to the worker's head buffer; raises when out of memory. */
static void head_add(lua_State *L, worker *w, const char *s, size_t n)
{
    if (w->headlen + n > w->headcap) {
        size_t cap = w->headcap ? w->headcap : 256;
        while (cap < w->headlen + n)
            cap *= 2;
        char *p = realloc(w->head, cap);
        if (p == NULL)
            luaL_error(L, "not enough memory for the response head");
        w->head = p;
        w->headcap = cap;
    }
    memcpy(w->head + w->headlen, s, n);
    w->headlen += n;
}

/* Raise a contract error: fmt with one string, no position.  Never returns. */
static int contract_error(lua_State *L, const char *fmt, const char *s)
{
    lua_pushfstring(L, fmt, s);
    return lua_error(L);
}

/* One "name: value" line for the value at vi (a string or number; its
 * tostring, without CR, LF or NUL).  Stack: [-0, +0]. */
static void add_line(lua_State *L, worker *w, const char *name, size_t nlen, int vi)
{
    int t = lua_type(L, vi);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        contract_error(L, "response header %s must be a string", name);
    lua_pushvalue(L, vi);                       /* a copy: tostring in place */
    size_t vlen;
    const char *v = lua_tolstring(L, -1, &vlen);
    for (size_t i = 0; i < vlen; i++)
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
            contract_error(L, "response header %s contains CR, LF or NUL", name);
    head_add(L, w, name, nlen);
    head_add(L, w, ": ", 2);
    head_add(L, w, v, vlen);
    head_add(L, w, "\r\n", 2);
    lua_pop(L, 1);
}

/* Content-Length, Connection, Date and Transfer-Encoding are the host's. */
static int is_framing(const char *name, size_t n)
{
    return (n == 14 && strncasecmp(name, "content-length", n) == 0)
        || (n == 10 && strncasecmp(name, "connection", n) == 0)
        || (n == 4 && strncasecmp(name, "date", n) == 0)
        || (n == 17 && strncasecmp(name, "transfer-encoding", n) == 0);
}

/* One entry of res.headers: key at -2, value at -1 (left in place): check
 * the name, then add a line per value (an array: one each, as ipairs). */
static void add_header(lua_State *L, worker *w)
{
    size_t nlen = 0;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
    if (name == NULL || !sc_is_token(name, nlen))
        contract_error(L, "invalid response header name %s", luaL_tolstring(L, -2, NULL));
    if (is_framing(name, nlen))
        return;
    int vi = lua_gettop(L);
    if (lua_type(L, vi) != LUA_TTABLE) {
        add_line(L, w, name, nlen, vi);
        return;
    }
    for (lua_Integer i = 1; lua_geti(L, vi, i) != LUA_TNIL; i++) {
        add_line(L, w, name, nlen, vi + 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Each entry of the headers table at hi, in pairs() order (its __pairs
 * too).  Stack: [-0, +0]. */
static void add_headers(lua_State *L, worker *w, int hi)
{
    luaL_checkstack(L, 8, "response headers");
    if (luaL_getmetafield(L, hi, "__pairs") == LUA_TNIL) {
        lua_pushnil(L);
        while (lua_next(L, hi)) {
            add_header(L, w);
            lua_pop(L, 1);
        }
        return;
    }
    lua_pushvalue(L, hi);
    lua_call(L, 1, 3);                          /* f, s, control */
    for (;;) {
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_call(L, 2, 2);                      /* key, value */
        if (lua_isnil(L, -2)) {
            lua_pop(L, 5);
            return;
        }
        add_header(L, w);
        lua_pop(L, 1);
        lua_replace(L, -2);                     /* the key is the new control */
    }
}

/* After dispatch: the response table at top -> status, body, with the
 * header lines in the worker's head buffer.  Raises on a broken contract. */
static int run_done(lua_State *L, int status, lua_KContext k)
{
    (void)status;
    (void)k;
    worker *w = lua_touserdata(L, lua_upvalueindex(1));
    int res = lua_gettop(L);
    if (!lua_istable(L, res))
        contract_error(L, "handler returned %s, not a response table", luaL_typename(L, res));
    lua_getfield(L, res, "status");
    lua_getfield(L, res, "body");
    lua_getfield(L, res, "headers");
    int isint = 0;
    lua_Integer code = 200;
    if (lua_toboolean(L, res + 1) && (lua_type(L, res + 1) != LUA_TNUMBER
        || (code = lua_tointegerx(L, res + 1, &isint), !isint) || code < 200 || code > 599))
        contract_error(L, "invalid response status %s", luaL_tolstring(L, res + 1, NULL));
    if (!lua_toboolean(L, res + 2)) {
        lua_pushliteral(L, "");
        lua_replace(L, res + 2);
    } else if (lua_type(L, res + 2) != LUA_TSTRING) {
        contract_error(L, "%s", "response body must be a string");
    }
    w->headlen = 0;
    if (!lua_isnil(L, res + 3)) {
        if (!lua_istable(L, res + 3))
            contract_error(L, "%s", "response headers must be a table");
        add_headers(L, w, res + 3);
    }
    lua_pushinteger(L, code);
    lua_pushvalue(L, res + 2);
    return 2;
}

/* req.args and req.cookies, as the query and the cookie header parse.
 * 0: the query does not parse.  Stack: req at 1; [-0, +0]. */
static int set_args_cookies(lua_State *L, const http_request *r)
{
    if (r->qlen == 0) {
        lua_newtable(L);
    } else {
        lua_pushvalue(L, lua_upvalueindex(3));
        lua_pushlstring(L, r->query, r->qlen);
        lua_call(L, 1, 1);
        if (!lua_toboolean(L, -1))
            return 0;
    }
    lua_getfield(L, 1, "headers");
    lua_getfield(L, -1, "cookie");
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 2);
        lua_newtable(L);
    } else {
        lua_pushvalue(L, lua_upvalueindex(4));
        lua_insert(L, -2);
        lua_call(L, 1, 1);
        lua_remove(L, -2);
        if (!lua_toboolean(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
        }
    }
    lua_setfield(L, 1, "cookies");
    lua_setfield(L, 1, "args");
    return 1;
}

/* The coroutine's body: run(request) -> status, body (head in w->head).
 * Upvalues: worker, dispatch, parse_query, parse_cookies. */
static int run_request(lua_State *L)
{
    const http_request *r = lua_touserdata(L, 1);
    lua_settop(L, 0);
    push_request(L, r);
    if (!set_args_cookies(L, r)) {
        worker *w = lua_touserdata(L, lua_upvalueindex(1));
        w->headlen = 0;
        head_add(L, w, text_head, sizeof text_head - 1);
        lua_pushinteger(L, 400);
        lua_pushlstring(L, bad_query_body, sizeof bad_query_body - 1);
        return 2;
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 1, 0, run_done);
    return run_done(L, LUA_OK, 0);
}

void runner_push(lua_State *L, worker *w)
{
    lua_pushlightuserdata(L, w);
    lua_insert(L, -4);
    lua_pushcclosure(L, run_request, 4);
}
