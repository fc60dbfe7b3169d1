/*
 * pg.c — `core.pg_connect(conninfo)`: PostgreSQL for the stores, through
 * libpq.
 *
 *   local c = assert(core.pg_connect("postgres://user:pass@127.0.0.1:5432/db"))
 *   local rows = assert(c:query("SELECT $1::bigint AS n", 42))   --> rows[1].n == 42
 *   local r = assert(c:query("INSERT INTO t (k) VALUES ($1) ON CONFLICT DO NOTHING", "a"))
 *   --> r.changes == 1
 *   c:ok()      --> true while the connection is usable
 *   c:close()
 *
 * Every value is bound ($1, $2, … with PQsendQueryParams; no SQL is built
 * from strings): strings travel in binary format, byte-exact (NUL bytes
 * included; the columns they go to are bytea), numbers and booleans as
 * text.  Results come in binary format and are decoded by column type
 * (int2/int4/int8 -> integer, float8 -> number, bool -> boolean, bytea and
 * text -> string).  Runtime failures answer nil, message, broken (true when
 * the connection is no longer usable: the server went away); misuse raises.
 * Here the calls block the calling thread; the host's `serve` replaces them,
 * inside a request, with versions that yield the request's coroutine and
 * wait on the worker's event loop (host/pgwait.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define PG_MT "stripe_connect.pg"
#define MAX_PARAMS 64

/* Type OIDs (pg_type.dat). */
enum { OID_BOOL = 16, OID_BYTEA = 17, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23,
       OID_FLOAT4 = 700, OID_FLOAT8 = 701 };

sc_pg *sc_pg_check(lua_State *L, int idx)
{
    sc_pg *p = luaL_checkudata(L, idx, PG_MT);
    if (p->conn == NULL)
        luaL_error(L, "pg: the connection is closed");
    if (p->busy)
        luaL_error(L, "pg: the connection is busy with another query");
    return p;
}

/* Notices ("relation … already exists, skipping") are not errors: dropped
 * rather than printed on stderr by libpq's default processor. */
static void no_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

sc_pg *sc_pg_push_conn(lua_State *L, PGconn *conn)
{
    PQsetNoticeProcessor(conn, no_notices, NULL);
    sc_pg *p = lua_newuserdata(L, sizeof *p);
    p->conn = conn;
    p->res = NULL;
    p->busy = 0;
    luaL_getmetatable(L, PG_MT);
    lua_setmetatable(L, -2);
    return p;
}

/* libpq's message, trimmed to its first line. */
int sc_pg_push_conn_error(lua_State *L, PGconn *conn, const char *what)
{
    const char *m = conn ? PQerrorMessage(conn) : "out of memory";
    size_t n = strcspn(m, "\n");
    lua_pushnil(L);
    lua_pushfstring(L, "postgres: %s: ", what);
    if (n > 0)
        lua_pushlstring(L, m, n);
    else
        lua_pushliteral(L, "connection failed");
    lua_concat(L, 2);
    lua_pushboolean(L, 1);
    return 3;
}

/* The number at `at` (value i + 1) as the text PostgreSQL reads, anchored
 * in its place on the stack; raises on a NaN or an infinity. */
static const char *number_text(lua_State *L, int at, int i)
{
    char buf[40];
    if (sc_isinteger(L, at)) {
        snprintf(buf, sizeof buf, "%lld", (long long)sc_tointeger(L, at));
    } else {
        double d = lua_tonumber(L, at);
        if (!isfinite(d))
            luaL_error(L, "pg: value %d is not a finite number", i + 1);
        snprintf(buf, sizeof buf, "%.17g", d);
    }
    lua_pushstring(L, buf);
    lua_replace(L, at);                       /* anchored where the number was */
    return lua_tostring(L, at);
}

int sc_pg_send(lua_State *L, sc_pg *p, int idx)
{
    const char *sql = luaL_checkstring(L, idx);
    int n = lua_gettop(L) - idx;
    if (n > MAX_PARAMS)
        return luaL_error(L, "pg: at most %d values", MAX_PARAMS);
    const char *vals[MAX_PARAMS];
    int lens[MAX_PARAMS], fmts[MAX_PARAMS];
    for (int i = 0; i < n; i++) {
        int at = idx + 1 + i;
        lens[i] = 0;
        fmts[i] = 0;
        switch (lua_type(L, at)) {
        case LUA_TNIL:
            vals[i] = NULL;
            break;
        case LUA_TBOOLEAN:
            vals[i] = lua_toboolean(L, at) ? "t" : "f";
            break;
        case LUA_TNUMBER:
            vals[i] = number_text(L, at, i);
            break;
        case LUA_TSTRING: {
            size_t len;
            vals[i] = lua_tolstring(L, at, &len);
            if (len > 0x7fffffff)
                return luaL_error(L, "pg: value %d is too long", i + 1);
            lens[i] = (int)len;
            fmts[i] = 1;
            break;
        }
        default:
            return luaL_error(L, "pg: value %d: cannot bind a %s", i + 1, luaL_typename(L, at));
        }
    }
    if (!PQsendQueryParams(p->conn, sql, n, NULL, vals, lens, fmts, 1))
        return sc_pg_push_conn_error(L, p->conn, "query"), -1;
    return 0;
}

void sc_pg_absorb(sc_pg *p, PGresult *r)
{
    if (p->res != NULL && PQresultStatus(p->res) == PGRES_FATAL_ERROR) {
        PQclear(r);
        return;
    }
    PQclear(p->res);
    p->res = r;
}

static unsigned long long be(const char *s, int n)
{
    unsigned long long v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | (unsigned char)s[i];
    return v;
}

static void push_cell(lua_State *L, const PGresult *r, int row, int col)
{
    const char *v = PQgetvalue(r, row, col);
    int n = PQgetlength(r, row, col);
    switch (PQftype(r, col)) {
    case OID_BOOL:
        lua_pushboolean(L, n > 0 && v[0] != 0);
        break;
    case OID_INT2:
        sc_pushinteger(L, (short)be(v, 2));
        break;
    case OID_INT4:
        sc_pushinteger(L, (int)be(v, 4));
        break;
    case OID_INT8:
        sc_pushinteger(L, (long long)be(v, 8));
        break;
    case OID_FLOAT4: {
        unsigned int u = (unsigned int)be(v, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        lua_pushnumber(L, f);
        break;
    }
    case OID_FLOAT8: {
        unsigned long long u = be(v, 8);
        double d;
        memcpy(&d, &u, sizeof d);
        lua_pushnumber(L, d);
        break;
    }
    default:                                      /* bytea, text, varchar: the bytes */
        lua_pushlstring(L, v, (size_t)n);
    }
}

int sc_pg_push_result(lua_State *L, sc_pg *p)
{
    PGresult *r = p->res;
    p->res = NULL;
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(p->conn);
        size_t n = strcspn(m, "\n");
        lua_pushnil(L);
        lua_pushliteral(L, "postgres: ");
        if (n > 0)
            lua_pushlstring(L, m, n);
        else
            lua_pushliteral(L, "query failed");
        lua_concat(L, 2);
        lua_pushboolean(L, PQstatus(p->conn) != CONNECTION_OK);
        PQclear(r);
        return 3;
    }
    int nrows = PQntuples(r), ncols = PQnfields(r);
    lua_createtable(L, nrows, 1);
    for (int i = 0; i < nrows; i++) {
        lua_createtable(L, 0, ncols);
        for (int c = 0; c < ncols; c++) {
            if (PQgetisnull(r, i, c))
                continue;
            push_cell(L, r, i, c);
            lua_setfield(L, -2, PQfname(r, c));
        }
        lua_rawseti(L, -2, i + 1);
    }
    const char *t = PQcmdTuples(r);
    sc_pushinteger(L, *t ? atoll(t) : 0);
    lua_setfield(L, -2, "changes");
    PQclear(r);
    return 1;
}

/* core.pg_connect(conninfo) -> connection | nil, message, true (blocking). */
static int pg_connect(lua_State *L)
{
    const char *info = luaL_checkstring(L, 1);
    PGconn *conn = PQconnectdb(info);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        int n = sc_pg_push_conn_error(L, conn, "cannot connect");
        PQfinish(conn);
        return n;
    }
    sc_pg_push_conn(L, conn);
    return 1;
}

/* c:query(sql, value…) -> rows | nil, message, broken (blocking). */
static int pg_query(lua_State *L)
{
    sc_pg *p = sc_pg_check(L, 1);
    if (sc_pg_send(L, p, 2) != 0)
        return 3;
    PGresult *r;
    while ((r = PQgetResult(p->conn)) != NULL)
        sc_pg_absorb(p, r);
    return sc_pg_push_result(L, p);
}

static int pg_ok(lua_State *L)
{
    sc_pg *p = luaL_checkudata(L, 1, PG_MT);
    lua_pushboolean(L, p->conn != NULL && !p->busy && PQstatus(p->conn) == CONNECTION_OK);
    return 1;
}

static void finish(sc_pg *p)
{
    PQclear(p->res);
    p->res = NULL;
    if (p->conn != NULL)
        PQfinish(p->conn);
    p->conn = NULL;
}

/* __gc: nothing else holds it (the host anchors a handle while it waits). */
static int pg_gc(lua_State *L)
{
    finish(luaL_checkudata(L, 1, PG_MT));
    return 0;
}

static int pg_close(lua_State *L)
{
    sc_pg *p = luaL_checkudata(L, 1, PG_MT);
    if (p->busy)
        return luaL_error(L, "pg: the connection is busy with a query");
    finish(p);
    return 0;
}

void sc_open_pg(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "query", pg_query },
        { "ok",    pg_ok },
        { "close", pg_close },
        { NULL, NULL },
    };
    if (luaL_newmetatable(L, PG_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, pg_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, pg_connect);
    lua_setfield(L, -2, "pg_connect");
}
