/*
 * pgwait.c — PostgreSQL calls that yield the request coroutine under serve.
 *
 * `core.pg_connect` and `c:query` (host/core/pg.c) block their thread.
 * Inside a request coroutine the worker's state has these versions instead,
 * on libpq's asynchronous API: PQconnectStart/PQconnectPoll, and
 * PQsendQueryParams then PQflush, PQconsumeInput, PQisBusy and PQgetResult,
 * each step waiting for its socket (PQsocket) with an event on the worker's
 * base, the way upstream.c runs curl multi.  When the connection is made, or
 * the query's last result is in, the coroutine is resumed with the same
 * values as the blocking versions.  A slow query holds its own request only.
 * Outside a request (APP.lua's top level, a coroutine the handler made
 * itself, a non-yieldable C boundary) the blocking versions run.
 */
#include <stdlib.h>

#include "serve.h"
#include "core/pg.h"

#define CONNECT_TIMEOUT 10      /* seconds for the whole connection sequence */
#define QUERY_TIMEOUT 60        /* seconds of silence from the server mid-query */

struct pgop {
    request_run *run;
    sc_pg *p;
    int ref;                    /* registry ref anchoring the handle */
    int connecting;             /* PQconnectPoll, not a query */
    struct event *ev;
    const char *fail;           /* set when it ends without a result */
};

static void step(struct pgop *op, short what);

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    step(arg, what);
}

/* Wait for the socket (kind: EV_READ and/or EV_WRITE); the socket may be a
 * new one after each PQconnectPoll. */
static int wait_for(struct pgop *op, short kind)
{
    worker *w = op->run->w;
    if (op->ev != NULL)
        event_free(op->ev);
    op->ev = event_new(w->base, PQsocket(op->p->conn), kind, on_event, op);
    if (op->ev == NULL)
        return -1;
    struct timeval tv = seconds_tv(op->connecting ? CONNECT_TIMEOUT : QUERY_TIMEOUT);
    return event_add(op->ev, &tv);
}

static int push_op(lua_State *L)
{
    struct pgop *op = lua_touserdata(L, 1);
    sc_pg *p = op->p;
    if (op->fail != NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "postgres: %s", op->fail);
        lua_pushboolean(L, 1);
        return 3;
    }
    if (op->connecting) {
        if (PQstatus(p->conn) != CONNECTION_OK)
            return sc_pg_push_conn_error(L, p->conn, "cannot connect");
        lua_rawgeti(L, LUA_REGISTRYINDEX, op->ref);
        return 1;
    }
    return sc_pg_push_result(L, p);
}

/* The operation is over: resume its request. */
static void done(struct pgop *op)
{
    request_run *run = op->run;
    lua_State *L = run->w->L;
    if (op->ev != NULL)
        event_free(op->ev);
    op->ev = NULL;
    op->p->busy = 0;
    if (op->fail != NULL && op->p->conn != NULL && !op->connecting) {
        PQfinish(op->p->conn);                    /* mid-query: not reusable */
        op->p->conn = NULL;
    }
    run->pgop = NULL;
    int n = coroutines_push(run, push_op, op);
    if (op->connecting && op->p->conn != NULL && PQstatus(op->p->conn) != CONNECTION_OK) {
        PQfinish(op->p->conn);
        op->p->conn = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, op->ref);
    free(op);
    coroutines_resume(run, n);
}

/* One step of PQconnectPoll: wait for the socket again, or done. */
static void step_connect(struct pgop *op, PGconn *pc)
{
    switch (PQconnectPoll(pc)) {
    case PGRES_POLLING_READING:
        if (wait_for(op, EV_READ) == 0)
            return;
        break;
    case PGRES_POLLING_WRITING:
        if (wait_for(op, EV_WRITE) == 0)
            return;
        break;
    case PGRES_POLLING_OK:
        PQsetnonblocking(pc, 1);
        break;
    default:                                  /* PGRES_POLLING_FAILED */
        break;
    }
    done(op);
}

static void step(struct pgop *op, short what)
{
    PGconn *pc = op->p->conn;
    if (what & EV_TIMEOUT) {
        op->fail = op->connecting ? "cannot connect: timed out" : "the server stopped answering";
        done(op);
        return;
    }
    if (op->connecting) {
        step_connect(op, pc);
        return;
    }
    if ((what & EV_READ) && !PQconsumeInput(pc)) {
        done(op);                                 /* the error is in the connection */
        return;
    }
    int f = PQflush(pc);
    if (f < 0) {
        done(op);
        return;
    }
    if (f == 1) {                                 /* more to send; read meanwhile */
        if (wait_for(op, EV_READ | EV_WRITE) != 0)
            op->fail = "out of memory";
        if (op->fail)
            done(op);
        return;
    }
    while (!PQisBusy(pc)) {
        PGresult *r = PQgetResult(pc);
        if (r == NULL) {
            done(op);
            return;
        }
        sc_pg_absorb(op->p, r);
    }
    if (wait_for(op, EV_READ) != 0) {
        op->fail = "out of memory";
        done(op);
    }
}

/* Outside a request: the blocking version (upvalue 2) with the same arguments. */
static int blocking(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Start op on the handle at the top of L (anchored) and yield. */
static int start(lua_State *L, request_run *run, sc_pg *p, int connecting)
{
    struct pgop *op = calloc(1, sizeof *op);
    if (op == NULL)
        return luaL_error(L, "pg: out of memory");
    op->run = run;
    op->p = p;
    op->connecting = connecting;
    op->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    short kind = EV_WRITE;                        /* PQconnectPoll starts by writing */
    if (!connecting) {
        int f = PQflush(p->conn);
        kind = f == 1 ? EV_READ | EV_WRITE : EV_READ;
        if (f < 0) {
            luaL_unref(L, LUA_REGISTRYINDEX, op->ref);
            free(op);
            return sc_pg_push_conn_error(L, p->conn, "query");
        }
    }
    if (wait_for(op, kind) != 0) {
        if (op->ev != NULL)
            event_free(op->ev);
        luaL_unref(L, LUA_REGISTRYINDEX, op->ref);
        free(op);
        return luaL_error(L, "pg: cannot watch the connection's socket");
    }
    p->busy = 1;
    run->pgop = op;
    return lua_yield(L, 0);
}

/* core.pg_connect(conninfo) under serve. */
static int pgwait_connect(lua_State *L)
{
    worker *w = lua_touserdata(L, lua_upvalueindex(1));
    request_run *run = coroutines_current(L, w);
    if (run == NULL)
        return blocking(L);
    const char *info = luaL_checkstring(L, 1);
    PGconn *pc = PQconnectStart(info);
    if (pc == NULL || PQstatus(pc) == CONNECTION_BAD || PQsocket(pc) < 0) {
        int n = sc_pg_push_conn_error(L, pc, "cannot connect");
        PQfinish(pc);
        return n;
    }
    sc_pg *p = sc_pg_push_conn(L, pc);
    return start(L, run, p, 1);
}

/* c:query(sql, value…) under serve. */
static int pgwait_query(lua_State *L)
{
    worker *w = lua_touserdata(L, lua_upvalueindex(1));
    request_run *run = coroutines_current(L, w);
    if (run == NULL)
        return blocking(L);
    sc_pg *p = sc_pg_check(L, 1);
    if (!PQisnonblocking(p->conn))
        PQsetnonblocking(p->conn, 1);
    if (sc_pg_send(L, p, 2) != 0)
        return 3;
    lua_pushvalue(L, 1);
    return start(L, run, p, 0);
}

/* Replace pg_connect in the core table on top of L, and query in the
 * handles' metatable.  Stack: [-0, +0]. */
void pgwait_install(lua_State *L, worker *w)
{
    lua_pushlightuserdata(L, w);
    lua_getfield(L, -2, "pg_connect");
    lua_pushcclosure(L, pgwait_connect, 2);
    lua_setfield(L, -2, "pg_connect");
    luaL_getmetatable(L, "stripe_connect.pg");
    lua_getfield(L, -1, "__index");
    lua_pushlightuserdata(L, w);
    lua_getfield(L, -2, "query");
    lua_pushcclosure(L, pgwait_query, 2);
    lua_setfield(L, -2, "query");
    lua_pop(L, 2);
}

/* The request is being dropped: its connection goes with it. */
void pgwait_cancel(request_run *run)
{
    struct pgop *op = run->pgop;
    if (op == NULL)
        return;
    if (op->ev != NULL)
        event_free(op->ev);
    PQclear(op->p->res);
    op->p->res = NULL;
    PQfinish(op->p->conn);
    op->p->conn = NULL;
    op->p->busy = 0;
    luaL_unref(run->w->L, LUA_REGISTRYINDEX, op->ref);
    free(op);
    run->pgop = NULL;
}
