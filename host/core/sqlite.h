/*
 * sqlite.h — the pieces of `core.sqlite_open`'s database handles that the
 * host's yielding `exec` (host/dbwait.c) shares with the blocking one.
 */
#ifndef SC_SQLITE_H
#define SC_SQLITE_H

#include "core.h"
#include "db.h"

/* The database of the handle at idx (raises when it is not one, or closed). */
sc_db *sc_sqlite_check(lua_State *L, int idx);

/* A job from the statements table at idx: everything that may raise is
 * checked before anything is allocated.  Raises on misuse. */
sc_job *sc_sqlite_job(lua_State *L, int idx);

/* Push a finished job's results (1) or nil, message (2).  Stack: [-0, +1|2]. */
int sc_sqlite_push_result(lua_State *L, const sc_job *job);

/* The blocking db:exec(statements). */
int sc_sqlite_exec_sync(lua_State *L);

#endif /* SC_SQLITE_H */
