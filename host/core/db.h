/*
 * db.h — SQLite on a database thread, with group commit.
 *
 * One sc_db per database (a file, keyed by its real path, or a named
 * in-memory database) per process, shared by every lua_State that opens it
 * (the host's workers are threads of one process): one connection and one
 * thread that owns it.  Callers hand it jobs — a list of statements with
 * their bound values — and are called back when the job is done.  The
 * thread takes every job that is waiting, runs them inside one
 * BEGIN IMMEDIATE … COMMIT (each job in a SAVEPOINT of its own, so a
 * failing job fails alone), and calls each job's `done` only after that
 * COMMIT has returned: an answered write is in the WAL, and survives the
 * process being killed.  Nothing in a job is a Lua value: only plain C
 * values cross threads.
 */
#ifndef SC_DB_H
#define SC_DB_H

#include <stddef.h>
#include <sqlite3.h>

typedef struct sc_db sc_db;
typedef struct sc_job sc_job;

enum { SC_NULL, SC_INT, SC_REAL, SC_TEXT, SC_BLOB };

typedef struct sc_value {
    int type;
    sqlite3_int64 i;
    double d;
    char *s;                    /* TEXT/BLOB bytes (owned), NUL-terminated */
    size_t n;
} sc_value;

typedef struct sc_stmt {
    char *sql;                  /* owned */
    sc_value *params;           /* owned, nparams */
    int nparams;
    /* results */
    int changes;                /* sqlite3_changes after the statement */
    int ncols, nrows;
    char **cols;                /* owned column names, ncols */
    sc_value *cells;            /* owned, nrows * ncols, row-major */
} sc_stmt;

struct sc_job {
    sc_stmt *stmts;
    int nstmts;
    char *err;                  /* NULL, or the failure (owned) */
    /* Called on the database thread once the job's transaction has
     * committed (or failed); the job then belongs to whoever `done` hands
     * it to, and is freed with sc_job_free. */
    void (*done)(sc_job *job);
    void *owner;                /* for `done` */
    void *owner_data;           /* for the owner (serve: the request_run waiting) */
    /* Instead of the statements: run(conn, job) outside any batch (the
     * migration uses this).  NULL for ordinary jobs. */
    void (*run)(sqlite3 *conn, sc_job *job);
    void *run_arg;
    sc_job *next;
};

typedef struct sc_db_opts {
    int busy_timeout_ms;        /* how long to wait for another process's lock */
    const char *synchronous;    /* "normal" (default) or "full" */
} sc_db_opts;

/* Open (or share) the database at `path` (":memory:" with `name`: a named
 * in-memory database shared by name; ":memory:" without: a private one).
 * NULL and *err (malloc'd) on failure. */
sc_db *sc_db_open(const char *path, const char *name, const sc_db_opts *o, char **err);

/* Drop one reference; the last one stops the thread (after the jobs still
 * queued) and closes the connection. */
void sc_db_release(sc_db *db);

/* Queue a job; `done` will be called on the database thread. */
void sc_db_submit(sc_db *db, sc_job *job);

/* Jobs queued so far (of every kind), the ordinary jobs run, and the
 * transactions (group commits) they took. */
void sc_db_stats(sc_db *db, long long *submitted, long long *jobs, long long *commits);

/* Run a job and wait for it (the calling thread blocks). */
void sc_db_run_sync(sc_db *db, sc_job *job);

/* Migrate: inside BEGIN IMMEDIATE, create schema_version, read it, run
 * steps[v] for every version above it up to `target` (steps[v] is a list of
 * nsteps[v] SQL strings), record the version.  Blocks the caller.  The
 * version found (or reached), or -1 and *err (malloc'd). */
int sc_db_migrate(sc_db *db, int target, char ***steps, const int *nsteps, char **err);

sc_job *sc_job_new(int nstmts);
void sc_job_free(sc_job *job);

#endif /* SC_DB_H */
