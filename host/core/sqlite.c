/*
 * sqlite.c — `core.sqlite_open(path, opts)`: SQLite for the stores, through
 * the database thread of db.c.
 *
 *   local db = assert(core.sqlite_open("data/connect.db", { busy_timeout = 5000 }))
 *   db:migrate(2, { [1] = { "CREATE TABLE …", … }, [2] = { … } })  --> 2
 *   local r = assert(db:exec{ { "INSERT OR IGNORE INTO t VALUES (?, ?)", "a", 1 },
 *                             { "SELECT * FROM t WHERE k = ?", "a" } })
 *   --> r[1].changes == 1, r[2][1].k == "a"
 *   db:stats()   --> { submitted = 2, jobs = 2, commits = 1 }
 *   db:close()
 *
 * `exec` runs its statements as one job: all of them, or none (a savepoint),
 * committed together with whatever other jobs are waiting.  Each entry is
 * { sql, value… }: exactly as many values as the statement has `?` marks
 * (nil binds NULL; strings bind as text, byte-exact; integers, floats,
 * booleans as 1/0).  A result per statement: { changes = n, row… }, a row
 * mapping column names to values (NULL columns absent).  Runtime failures
 * answer nil, message; misuse raises.  Here `exec` blocks the calling thread
 * until the job has committed; the host's `serve` replaces it, inside a
 * request, with one that yields the request's coroutine instead.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "sqlite.h"

#define DB_MT "stripe_connect.sqlite"
#define MAX_STMTS 64

typedef struct { sc_db *db; } db_box;

sc_db *sc_sqlite_check(lua_State *L, int idx)
{
    db_box *b = luaL_checkudata(L, idx, DB_MT);
    if (b->db == NULL)
        luaL_error(L, "sqlite: the database is closed");
    return b->db;
}

/* Number of `?` marks in sql outside quotes and comments. */
static int count_marks(const char *s)
{
    int n = 0;
    while (*s) {
        if (*s == '\'' || *s == '"') {
            char q = *s++;
            while (*s && *s != q)
                s++;
        } else if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n')
                s++;
        } else if (*s == '?') {
            n++;
        }
        if (*s)
            s++;
    }
    return n;
}

/* Check entry i of the statements table at idx (on top of the stack) and
 * return its mark count; raises on misuse. */
static int check_entry(lua_State *L, int i)
{
    if (lua_type(L, -1) != LUA_TTABLE)
        luaL_error(L, "sqlite exec: statement %d must be a table { sql, value… }", i);
    lua_rawgeti(L, -1, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "sqlite exec: statement %d: the SQL must be a string", i);
    int marks = count_marks(lua_tostring(L, -1));
    lua_pop(L, 1);
    for (int p = 1; p <= marks; p++) {
        lua_rawgeti(L, -1, p + 1);
        int t = lua_type(L, -1);
        if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
            luaL_error(L, "sqlite exec: statement %d, value %d: %s cannot be stored", i, p,
                       lua_typename(L, t));
        lua_pop(L, 1);
    }
    return marks;
}

/* Copy the value on top of the stack (checked) into v.  0, or -1 OOM. */
static int take_value(lua_State *L, sc_value *v)
{
    switch (lua_type(L, -1)) {
    case LUA_TBOOLEAN:
        v->type = SC_INT;
        v->i = lua_toboolean(L, -1);
        return 0;
    case LUA_TNUMBER:
        if (sc_isinteger(L, -1)) {
            v->type = SC_INT;
            v->i = (sqlite3_int64)sc_tointeger(L, -1);
        } else {
            v->type = SC_REAL;
            v->d = lua_tonumber(L, -1);
        }
        return 0;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, -1, &v->n);
        v->type = SC_TEXT;
        v->s = malloc(v->n + 1);
        if (v->s == NULL)
            return -1;
        memcpy(v->s, s, v->n + 1);
        return 0;
    }
    default:
        v->type = SC_NULL;
        return 0;
    }
}

/* Fill statement s from the entry on top of the stack.  0, or -1 OOM. */
static int take_entry(lua_State *L, sc_stmt *s, int marks)
{
    lua_rawgeti(L, -1, 1);
    s->sql = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    s->nparams = marks;
    s->params = marks > 0 ? calloc((size_t)marks, sizeof *s->params) : NULL;
    if (s->sql == NULL || (marks > 0 && s->params == NULL))
        return -1;
    for (int p = 0; p < marks; p++) {
        lua_rawgeti(L, -1, p + 2);
        int r = take_value(L, &s->params[p]);
        lua_pop(L, 1);
        if (r != 0)
            return -1;
    }
    return 0;
}

sc_job *sc_sqlite_job(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)lua_rawlen(L, idx);
    if (n < 1 || n > MAX_STMTS)
        luaL_error(L, "sqlite exec: 1 to %d statements expected", MAX_STMTS);
    int marks[MAX_STMTS];
    for (int i = 1; i <= n; i++) {               /* first every check that may raise */
        lua_rawgeti(L, idx, i);
        marks[i - 1] = check_entry(L, i);
        lua_pop(L, 1);
    }
    sc_job *job = sc_job_new(n);
    int ok = job != NULL;
    for (int i = 1; ok && i <= n; i++) {
        lua_rawgeti(L, idx, i);
        ok = take_entry(L, &job->stmts[i - 1], marks[i - 1]) == 0;
        lua_pop(L, 1);
    }
    if (!ok) {
        sc_job_free(job);
        luaL_error(L, "sqlite exec: out of memory");
    }
    return job;
}

static void push_value(lua_State *L, const sc_value *v)
{
    switch (v->type) {
    case SC_INT:  sc_pushinteger(L, v->i); break;
    case SC_REAL: lua_pushnumber(L, v->d); break;
    case SC_TEXT:
    case SC_BLOB: lua_pushlstring(L, v->s, v->n); break;
    default:      lua_pushnil(L); break;
    }
}

static void push_stmt_result(lua_State *L, const sc_stmt *s)
{
    lua_createtable(L, s->nrows, 1);
    sc_pushinteger(L, s->changes);
    lua_setfield(L, -2, "changes");
    for (int r = 0; r < s->nrows; r++) {
        lua_createtable(L, 0, s->ncols);
        const sc_value *row = s->cells + (size_t)r * (size_t)s->ncols;
        for (int c = 0; c < s->ncols; c++) {
            if (row[c].type == SC_NULL)
                continue;
            push_value(L, &row[c]);
            lua_setfield(L, -2, s->cols[c]);
        }
        lua_rawseti(L, -2, r + 1);
    }
}

int sc_sqlite_push_result(lua_State *L, const sc_job *job)
{
    if (job->err != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, job->err);
        return 2;
    }
    lua_createtable(L, job->nstmts, 0);
    for (int i = 0; i < job->nstmts; i++) {
        push_stmt_result(L, &job->stmts[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* Protected part of exec_sync: push the results of the job (light
 * userdata 1), so that a memory error cannot leak the job. */
static int push_job_p(lua_State *L)
{
    return sc_sqlite_push_result(L, lua_touserdata(L, 1));
}

int sc_sqlite_exec_sync(lua_State *L)
{
    sc_db *db = sc_sqlite_check(L, 1);
    sc_job *job = sc_sqlite_job(L, 2);
    sc_db_run_sync(db, job);
    int top = lua_gettop(L);
    lua_pushcfunction(L, push_job_p);
    lua_pushlightuserdata(L, job);
    int status = lua_pcall(L, 1, LUA_MULTRET, 0);
    sc_job_free(job);
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L) - top;
}

/* db:migrate(target, { [v] = { sql, … } }) -> version | nil, message.
 * The SQL strings stay referenced by argument 3 during the call; the arrays
 * pointing at them are userdata left on the stack. */
static int db_migrate(lua_State *L)
{
    sc_db *db = sc_sqlite_check(L, 1);
    int target = (int)luaL_checkinteger(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_argcheck(L, target >= 1 && target <= 1000, 2, "schema version 1 to 1000 expected");
    luaL_checkstack(L, target + 8, "too many schema versions");
    char ***steps = lua_newuserdata(L, sizeof(char **) * (size_t)(target + 1));
    int *nsteps = lua_newuserdata(L, sizeof(int) * (size_t)(target + 1));
    for (int v = 1; v <= target; v++) {
        lua_rawgeti(L, 3, v);
        luaL_argcheck(L, lua_istable(L, -1), 3, "a list of SQL strings per version expected");
        nsteps[v] = (int)lua_rawlen(L, -1);
        steps[v] = lua_newuserdata(L, sizeof(char *) * (size_t)(nsteps[v] + 1));
        for (int i = 1; i <= nsteps[v]; i++) {
            lua_rawgeti(L, -2, i);
            luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 3, "SQL strings expected");
            steps[v][i - 1] = (char *)lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        lua_remove(L, -2);                        /* the version's table; its array stays */
    }
    char *err = NULL;
    int found = sc_db_migrate(db, target, steps, nsteps, &err);
    if (found < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "sqlite: migration failed");
        free(err);
        return 2;
    }
    sc_pushinteger(L, found);
    return 1;
}

/* db:stats() -> { submitted = q, jobs = n, commits = m }: jobs queued for
 * the database thread, jobs it ran (every opener's in the process) and the
 * transactions they took. */
static int db_stats(lua_State *L)
{
    long long submitted, jobs, commits;
    sc_db_stats(sc_sqlite_check(L, 1), &submitted, &jobs, &commits);
    lua_createtable(L, 0, 3);
    sc_pushinteger(L, submitted);
    lua_setfield(L, -2, "submitted");
    sc_pushinteger(L, jobs);
    lua_setfield(L, -2, "jobs");
    sc_pushinteger(L, commits);
    lua_setfield(L, -2, "commits");
    return 1;
}

static int db_close(lua_State *L)
{
    db_box *b = luaL_checkudata(L, 1, DB_MT);
    if (b->db != NULL) {
        sc_db_release(b->db);
        b->db = NULL;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const char *const OPEN_OPTS[] = { "busy_timeout", "name", "synchronous", NULL };

/* Read opts at index 2 into o and *name; raises on misuse. */
static void read_open_opts(lua_State *L, sc_db_opts *o, const char **name)
{
    o->busy_timeout_ms = 5000;
    if (lua_isnoneornil(L, 2))
        return;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        int known = 0;
        for (int i = 0; OPEN_OPTS[i] && lua_type(L, -2) == LUA_TSTRING; i++)
            known |= strcmp(lua_tostring(L, -2), OPEN_OPTS[i]) == 0;
        if (!known)
            luaL_error(L, "sqlite_open: unknown option '%s'",
                       lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
        lua_pop(L, 1);
    }
    lua_getfield(L, 2, "busy_timeout");
    if (!lua_isnil(L, -1)) {
        lua_Number ms = luaL_checknumber(L, -1);
        luaL_argcheck(L, ms >= 0 && ms <= 3600000, 2, "busy_timeout: 0 to 3600000 ms expected");
        o->busy_timeout_ms = (int)ms;
    }
    lua_getfield(L, 2, "synchronous");
    o->synchronous = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_getfield(L, 2, "name");
    *name = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 3);
}

/* core.sqlite_open(path, opts) -> db | nil, message */
static int core_sqlite_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    sc_db_opts o = { 0, NULL };
    const char *name = NULL;
    read_open_opts(L, &o, &name);
    luaL_argcheck(L, path[0] != '\0' && strlen(path) == lua_rawlen(L, 1), 1,
                  "a path without NUL bytes expected");
    db_box *b = lua_newuserdata(L, sizeof *b);
    b->db = NULL;
    luaL_getmetatable(L, DB_MT);
    lua_setmetatable(L, -2);
    char *err = NULL;
    b->db = sc_db_open(path, name, &o, &err);
    if (b->db == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "sqlite: cannot open the database");
        free(err);
        return 2;
    }
    return 1;
}

void sc_open_sqlite(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "close",   db_close },
        { "exec",    sc_sqlite_exec_sync },
        { "migrate", db_migrate },
        { "stats",   db_stats },
        { NULL, NULL }
    };
    if (luaL_newmetatable(L, DB_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, db_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, db_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, core_sqlite_open);
    lua_setfield(L, -2, "sqlite_open");
}
