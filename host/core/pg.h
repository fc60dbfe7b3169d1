/*
 * pg.h — the pieces of `core.pg_connect`'s connection handles that the
 * host's yielding versions (host/pgwait.c) share with the blocking ones.
 */
#ifndef SC_PG_H
#define SC_PG_H

#include <libpq-fe.h>

#include "core.h"

typedef struct sc_pg {
    PGconn *conn;               /* NULL once closed */
    PGresult *res;              /* the result being collected (see sc_pg_absorb) */
    int busy;                   /* a query is in flight (the host's yielding version) */
} sc_pg;

/* The connection of the handle at idx (raises when it is not one, or closed,
 * or busy with another query). */
sc_pg *sc_pg_check(lua_State *L, int idx);

/* A new handle around conn (owned from now on).  Stack: [-0, +1]. */
sc_pg *sc_pg_push_conn(lua_State *L, PGconn *conn);

/* PQsendQueryParams of sql (idx) and the values after it (nil NULL, strings
 * binary (bytea) and byte-exact, numbers and booleans as text).  0, or -1 with
 * the failure pushed as nil, message, true (3).  Raises on misuse. */
int sc_pg_send(lua_State *L, sc_pg *p, int idx);

/* Keep one result of the query being collected (the last; an error wins). */
void sc_pg_absorb(sc_pg *p, PGresult *r);

/* Push the collected result: rows (a list of name -> value, NULL columns
 * absent, with field `changes`) or nil, message, broken (the connection is
 * unusable).  Clears it.  Stack: [-0, +1|3]. */
int sc_pg_push_result(lua_State *L, sc_pg *p);

/* Push nil, message (libpq's, one line), true.  Stack: [-0, +3]. */
int sc_pg_push_conn_error(lua_State *L, PGconn *conn, const char *what);

#endif /* SC_PG_H */
