/*
 * db.c — SQLite on a database thread, with group commit (see db.h).
 *
 * The registry maps a database's key (real path, or "memory:" + name) to
 * its sc_db, so that every lua_State of the process that opens the same
 * database shares one connection and one writer thread: SQLite allows one
 * writer per file, and a single writer that commits many callers' work in
 * one transaction is both faster and free of lock waits between the
 * process's own workers.  The thread waits for other processes' locks
 * (busy_timeout); the event loops that submitted the jobs never do.
 *
 * Durability: WAL with synchronous=NORMAL (the default here) keeps every
 * committed transaction across a crash or kill of the process; only an OS
 * crash or power loss may lose the last commits (synchronous=FULL syncs the
 * WAL on every commit, and survives those too).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

#define STMT_CACHE 64           /* prepared statements kept per database */
#define MAX_BATCH 512           /* jobs committed together at most */

struct sc_db {
    char *key;                  /* registry key, or NULL (private) */
    int refs;
    sqlite3 *conn;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sc_job *head, *tail;        /* waiting jobs */
    int stop;
    long long submitted;        /* jobs queued (of every kind) */
    long long jobs, commits;    /* ordinary jobs run, transactions they took */
    struct { char *sql; sqlite3_stmt *st; } cache[STMT_CACHE];
    int ncache;
    sc_db *next;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static sc_db *registry;

static char *dup_printf(const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, fmt, a, b);
    return s;
}

/* ---------------------------------------------------------------- jobs */

sc_job *sc_job_new(int nstmts)
{
    sc_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return NULL;
    job->nstmts = nstmts;
    job->stmts = nstmts > 0 ? calloc((size_t)nstmts, sizeof *job->stmts) : NULL;
    if (nstmts > 0 && job->stmts == NULL) {
        free(job);
        return NULL;
    }
    return job;
}

static void free_values(sc_value *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i].s);
    free(v);
}

void sc_job_free(sc_job *job)
{
    if (job == NULL)
        return;
    for (int i = 0; i < job->nstmts; i++) {
        sc_stmt *s = &job->stmts[i];
        free(s->sql);
        free_values(s->params, (size_t)s->nparams);
        for (int c = 0; c < s->ncols; c++)
            free(s->cols[c]);
        free(s->cols);
        free_values(s->cells, (size_t)s->nrows * (size_t)s->ncols);
    }
    free(job->stmts);
    free(job->err);
    free(job);
}

/* ----------------------------------------------------------- statements */

/* The cached prepared statement for sql, or a new one (*owned = 1: the
 * cache is full, finalize it after use).  NULL and *err on failure. */
static sqlite3_stmt *prepare(sc_db *db, const char *sql, int *owned, char **err)
{
    *owned = 0;
    for (int i = 0; i < db->ncache; i++)
        if (strcmp(db->cache[i].sql, sql) == 0)
            return db->cache[i].st;
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail) != SQLITE_OK) {
        *err = dup_printf("sqlite: %s%s", sqlite3_errmsg(db->conn), "");
        return NULL;
    }
    if (st == NULL || tail[strspn(tail, " \t\r\n;")] != '\0') {
        sqlite3_finalize(st);
        *err = dup_printf("sqlite: %s%s", "one statement per entry expected", "");
        return NULL;
    }
    char *copy = db->ncache < STMT_CACHE ? strdup(sql) : NULL;
    if (copy == NULL) {
        *owned = 1;
        return st;
    }
    db->cache[db->ncache].sql = copy;
    db->cache[db->ncache].st = st;
    db->ncache++;
    return st;
}

static int bind_all(sqlite3_stmt *st, const sc_stmt *s)
{
    if (sqlite3_bind_parameter_count(st) != s->nparams)
        return SQLITE_RANGE;
    for (int i = 0; i < s->nparams; i++) {
        const sc_value *v = &s->params[i];
        int rc = SQLITE_OK;
        switch (v->type) {
        case SC_INT:  rc = sqlite3_bind_int64(st, i + 1, v->i); break;
        case SC_REAL: rc = sqlite3_bind_double(st, i + 1, v->d); break;
        case SC_TEXT: rc = sqlite3_bind_text64(st, i + 1, v->s, v->n, SQLITE_STATIC, SQLITE_UTF8); break;
        case SC_BLOB: rc = sqlite3_bind_blob64(st, i + 1, v->s, v->n, SQLITE_STATIC); break;
        default:      rc = sqlite3_bind_null(st, i + 1); break;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

/* Copy column c of the current row into v.  0, or -1 out of memory. */
static int take_cell(sqlite3_stmt *st, int c, sc_value *v)
{
    v->type = SC_NULL;
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER:
        v->type = SC_INT;
        v->i = sqlite3_column_int64(st, c);
        return 0;
    case SQLITE_FLOAT:
        v->type = SC_REAL;
        v->d = sqlite3_column_double(st, c);
        return 0;
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, c);
        v->n = (size_t)sqlite3_column_bytes(st, c);
        v->type = SC_TEXT;
        v->s = malloc(v->n + 1);
        if (v->s == NULL)
            return -1;
        if (v->n > 0)
            memcpy(v->s, p, v->n);
        v->s[v->n] = '\0';
        return 0;
    }
    default:
        return 0;
    }
}

/* Append the current row to s's results.  0, or -1 out of memory. */
static int take_row(sqlite3_stmt *st, sc_stmt *s, size_t *cap)
{
    if (s->cols == NULL) {
        s->ncols = sqlite3_column_count(st);
        s->cols = calloc((size_t)s->ncols + 1, sizeof *s->cols);
        if (s->cols == NULL)
            return -1;
        for (int c = 0; c < s->ncols; c++)
            if ((s->cols[c] = strdup(sqlite3_column_name(st, c))) == NULL)
                return -1;
    }
    size_t need = ((size_t)s->nrows + 1) * (size_t)s->ncols;
    if (need > *cap) {
        size_t ncap = *cap ? *cap * 2 : (size_t)s->ncols * 4;
        while (ncap < need)
            ncap *= 2;
        sc_value *cells = realloc(s->cells, ncap * sizeof *cells);
        if (cells == NULL)
            return -1;
        memset(cells + *cap, 0, (ncap - *cap) * sizeof *cells);
        s->cells = cells;
        *cap = ncap;
    }
    sc_value *row = s->cells + (size_t)s->nrows * (size_t)s->ncols;
    s->nrows++;
    for (int c = 0; c < s->ncols; c++)
        if (take_cell(st, c, &row[c]) != 0)
            return -1;
    return 0;
}

/* Run one statement, collecting its rows.  0, or -1 and *err. */
static int run_stmt(sc_db *db, sc_stmt *s, char **err)
{
    int owned;
    sqlite3_stmt *st = prepare(db, s->sql, &owned, err);
    if (st == NULL)
        return -1;
    int rc = bind_all(st, s);
    size_t cap = 0;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && take_row(st, s, &cap) != 0)
            rc = SQLITE_NOMEM;
    }
    if (rc == SQLITE_DONE)
        s->changes = sqlite3_stmt_readonly(st) ? 0 : sqlite3_changes(db->conn);
    else if (rc == SQLITE_RANGE)
        *err = dup_printf("sqlite: %s%s", "wrong number of bound values", "");
    else
        *err = dup_printf("sqlite: %s%s", sqlite3_errmsg(db->conn), "");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (owned)
        sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* A statement without values or results (BEGIN, SAVEPOINT, …).  0 or -1. */
static int simple(sc_db *db, const char *sql, char **err)
{
    sc_stmt s = { 0 };
    s.sql = (char *)sql;
    int r = run_stmt(db, &s, err);
    free(s.cols);
    return r;
}

/* -------------------------------------------------------- group commit */

/* Whether every statement of jobs [first, end) only reads (they are
 * prepared, and cached, on the way): such a batch needs no write lock. */
static int batch_reads_only(sc_db *db, sc_job *first, sc_job *end)
{
    for (sc_job *j = first; j != end; j = j->next) {
        for (int i = 0; i < j->nstmts; i++) {
            char *err = NULL;
            int owned;
            sqlite3_stmt *st = prepare(db, j->stmts[i].sql, &owned, &err);
            int ro = st != NULL && sqlite3_stmt_readonly(st);
            if (owned)
                sqlite3_finalize(st);
            free(err);
            if (!ro)
                return 0;
        }
    }
    return 1;
}

/* Run one job's statements; with `savepoint`, inside one of its own so that
 * a failure undoes only this job. */
static void run_job(sc_db *db, sc_job *j, int savepoint)
{
    char *ignore = NULL;
    if (savepoint && simple(db, "SAVEPOINT job", &j->err) != 0)
        return;
    for (int i = 0; i < j->nstmts && j->err == NULL; i++)
        run_stmt(db, &j->stmts[i], &j->err);
    if (savepoint && j->err != NULL)
        simple(db, "ROLLBACK TO job", &ignore);
    free(ignore);
    ignore = NULL;
    if (savepoint)
        simple(db, "RELEASE job", &ignore);
    free(ignore);
}

/* Run jobs [first, end) in one transaction: a savepoint each when there
 * are several; a batch that only reads takes no write lock (BEGIN
 * DEFERRED: in WAL mode it waits for no other process). */
static void run_batch(sc_db *db, sc_job *first, sc_job *end)
{
    char *err = NULL, *ignore = NULL;
    int alone = first->next == end;
    const char *begin = batch_reads_only(db, first, end) ? "BEGIN" : "BEGIN IMMEDIATE";
    if (simple(db, begin, &err) != 0) {
        for (sc_job *j = first; j != end; j = j->next)
            j->err = j == first ? err : strdup(err ? err : "sqlite: BEGIN failed");
        return;
    }
    for (sc_job *j = first; j != end; j = j->next)
        run_job(db, j, !alone);
    if (alone && first->err != NULL) {
        simple(db, "ROLLBACK", &ignore);
        free(ignore);
        return;
    }
    if (simple(db, "COMMIT", &err) == 0)
        return;
    simple(db, "ROLLBACK", &ignore);
    free(ignore);
    for (sc_job *j = first; j != end; j = j->next)
        if (j->err == NULL)
            j->err = dup_printf("%s%s", err ? err : "sqlite: COMMIT failed", " (not committed)");
    free(err);
}

/* Hand each job of [first, end) to its `done`. */
static void finish(sc_job *first, sc_job *end)
{
    while (first != end) {
        sc_job *next = first->next;
        first->next = NULL;
        first->done(first);
        first = next;
    }
}

/* Run a list of jobs in order: ordinary ones in batches, run() jobs alone. */
static void run_list(sc_db *db, sc_job *list)
{
    while (list != NULL) {
        sc_job *end = list->next;
        if (list->run != NULL) {
            list->run(db->conn, list);
        } else {
            int n = 1;
            while (end != NULL && end->run == NULL && n < MAX_BATCH) {
                end = end->next;
                n++;
            }
            run_batch(db, list, end);
            pthread_mutex_lock(&db->mu);
            db->jobs += n;
            db->commits++;
            pthread_mutex_unlock(&db->mu);
        }
        finish(list, end);
        list = end;
    }
}

static void *db_main(void *arg)
{
    sc_db *db = arg;
    pthread_mutex_lock(&db->mu);
    for (;;) {
        while (db->head == NULL && !db->stop)
            pthread_cond_wait(&db->cv, &db->mu);
        if (db->head == NULL)
            break;
        sc_job *list = db->head;
        db->head = db->tail = NULL;
        pthread_mutex_unlock(&db->mu);
        run_list(db, list);
        pthread_mutex_lock(&db->mu);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

void sc_db_submit(sc_db *db, sc_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&db->mu);
    db->submitted++;
    if (db->tail)
        db->tail->next = job;
    else
        db->head = job;
    db->tail = job;
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
}

void sc_db_stats(sc_db *db, long long *submitted, long long *jobs, long long *commits)
{
    pthread_mutex_lock(&db->mu);
    *submitted = db->submitted;
    *jobs = db->jobs;
    *commits = db->commits;
    pthread_mutex_unlock(&db->mu);
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void sync_done(sc_job *job)
{
    struct waiter *w = job->owner;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void sc_db_run_sync(sc_db *db, sc_job *job)
{
    struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    job->done = sync_done;
    job->owner = &w;
    sc_db_submit(db, job);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
}

/* ------------------------------------------------------------ migration */

struct migration {
    int target, found;
    char ***steps;
    const int *nsteps;
};

static int exec_sql(sqlite3 *conn, const char *sql, char **err)
{
    if (sqlite3_exec(conn, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    if (*err == NULL)
        *err = dup_printf("sqlite: %s%s", sqlite3_errmsg(conn), "");
    return -1;
}

static int read_version(sqlite3 *conn, int *version, char **err)
{
    sqlite3_stmt *st = NULL;
    *version = -1;
    if (sqlite3_prepare_v2(conn, "SELECT version FROM schema_version", -1, &st, NULL) != SQLITE_OK)
        return exec_sql(conn, "SELECT version FROM schema_version", err);
    if (sqlite3_step(st) == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (*version < 0) {
        *version = 0;
        return exec_sql(conn, "INSERT INTO schema_version (version) VALUES (0)", err);
    }
    return 0;
}

static int apply_steps(sqlite3 *conn, struct migration *m, char **err)
{
    for (int v = m->found + 1; v <= m->target; v++) {
        for (int i = 0; i < m->nsteps[v]; i++)
            if (exec_sql(conn, m->steps[v][i], err) != 0)
                return -1;
        char sql[64];
        snprintf(sql, sizeof sql, "UPDATE schema_version SET version = %d", v);
        if (exec_sql(conn, sql, err) != 0)
            return -1;
    }
    return 0;
}

static void migrate_run(sqlite3 *conn, sc_job *job)
{
    struct migration *m = job->run_arg;
    char *err = NULL;
    int ok = exec_sql(conn, "BEGIN IMMEDIATE", &err) == 0
          && exec_sql(conn, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", &err) == 0
          && read_version(conn, &m->found, &err) == 0;
    if (ok && m->found > m->target) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%d", m->found);
        snprintf(b, sizeof b, "%d", m->target);
        err = dup_printf("sqlite: the database has schema version %s, newer than this code (%s)", a, b);
        ok = 0;
    }
    ok = ok && apply_steps(conn, m, &err) == 0 && exec_sql(conn, "COMMIT", &err) == 0;
    if (!ok) {
        sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
        job->err = err ? err : strdup("sqlite: migration failed");
    }
}

int sc_db_migrate(sc_db *db, int target, char ***steps, const int *nsteps, char **err)
{
    struct migration m = { target, 0, steps, nsteps };
    sc_job *job = sc_job_new(0);
    if (job == NULL) {
        *err = strdup("sqlite: out of memory");
        return -1;
    }
    job->run = migrate_run;
    job->run_arg = &m;
    sc_db_run_sync(db, job);
    int found = job->err ? -1 : (m.found > target ? m.found : target);
    if (job->err) {
        *err = job->err;
        job->err = NULL;
    }
    sc_job_free(job);
    return found;
}

/* ------------------------------------------------------------- registry */

/* The registry key of path: its real path (the folder's, for a file not
 * created yet), so that two spellings of one file share one writer. */
static char *file_key(const char *path)
{
    char buf[PATH_MAX];
    if (realpath(path, buf) != NULL)
        return strdup(buf);
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (slash == path)
        strcpy(dir, "/");
    if (realpath(dir, buf) == NULL)
        return strdup(path);
    return dup_printf("%s/%s", buf, slash ? slash + 1 : path);
}

static int set_pragmas(sc_db *db, const sc_db_opts *o, int memory, char **err)
{
    char sql[96];
    const char *sync = o->synchronous ? o->synchronous : "normal";
    if (strcmp(sync, "normal") != 0 && strcmp(sync, "full") != 0) {
        *err = strdup("sqlite: synchronous must be \"normal\" or \"full\"");
        return -1;
    }
    sqlite3_busy_timeout(db->conn, o->busy_timeout_ms);
    snprintf(sql, sizeof sql, "PRAGMA synchronous = %s", sync);
    if (!memory && exec_sql(db->conn, "PRAGMA journal_mode = WAL", err) != 0)
        return -1;
    /* Deleted and overwritten content is zeroed in the file (tokens replaced
     * by a refresh, a disconnect or a rotation do not linger in free space). */
    if (exec_sql(db->conn, "PRAGMA secure_delete = ON", err) != 0)
        return -1;
    return exec_sql(db->conn, sql, err);
}

/* Open the connection and start the thread; NULL and *err on failure. */
static sc_db *db_new(const char *path, char *key, const sc_db_opts *o, char **err)
{
    sc_db *db = calloc(1, sizeof *db);
    if (db == NULL) {
        free(key);
        *err = strdup("sqlite: out of memory");
        return NULL;
    }
    db->key = key;
    db->refs = 1;
    int memory = strcmp(path, ":memory:") == 0;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    /* The database holds tokens: a new file is created 0600 here, before
     * SQLite would create it 0644; SQLite gives its -wal and -shm files the
     * database file's mode. */
    if (!memory && path[0] != '\0') {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    if (sqlite3_open_v2(path, &db->conn, flags, NULL) != SQLITE_OK) {
        *err = dup_printf("sqlite: cannot open %s: %s", path,
                          db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
    } else if (set_pragmas(db, o, memory, err) == 0) {
        pthread_mutex_init(&db->mu, NULL);
        pthread_cond_init(&db->cv, NULL);
        if (pthread_create(&db->thread, NULL, db_main, db) == 0)
            return db;
        *err = dup_printf("sqlite: cannot start the database thread: %s%s", strerror(errno), "");
        pthread_cond_destroy(&db->cv);
        pthread_mutex_destroy(&db->mu);
    }
    sqlite3_close_v2(db->conn);
    free(db->key);
    free(db);
    return NULL;
}

sc_db *sc_db_open(const char *path, const char *name, const sc_db_opts *o, char **err)
{
    int memory = strcmp(path, ":memory:") == 0;
    char *key = memory ? (name ? dup_printf("memory:%s%s", name, "") : NULL) : file_key(path);
    if (key == NULL && (!memory || name))
        return *err = strdup("sqlite: out of memory"), NULL;
    pthread_mutex_lock(&registry_mu);
    for (sc_db *db = registry; key != NULL && db != NULL; db = db->next) {
        if (strcmp(db->key, key) == 0) {
            db->refs++;
            pthread_mutex_unlock(&registry_mu);
            free(key);
            return db;
        }
    }
    sc_db *db = db_new(path, key, o, err);
    if (db != NULL && db->key != NULL) {
        db->next = registry;
        registry = db;
    }
    pthread_mutex_unlock(&registry_mu);
    return db;
}

static void unregister(sc_db *db)
{
    for (sc_db **p = &registry; *p != NULL; p = &(*p)->next) {
        if (*p == db) {
            *p = db->next;
            return;
        }
    }
}

void sc_db_release(sc_db *db)
{
    pthread_mutex_lock(&registry_mu);
    int last = --db->refs == 0;
    if (last)
        unregister(db);
    pthread_mutex_unlock(&registry_mu);
    if (!last)
        return;
    pthread_mutex_lock(&db->mu);
    db->stop = 1;
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
    pthread_join(db->thread, NULL);
    for (int i = 0; i < db->ncache; i++) {
        sqlite3_finalize(db->cache[i].st);
        free(db->cache[i].sql);
    }
    sqlite3_close_v2(db->conn);
    pthread_cond_destroy(&db->cv);
    pthread_mutex_destroy(&db->mu);
    free(db->key);
    free(db);
}
