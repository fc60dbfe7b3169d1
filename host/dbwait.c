/*
 * dbwait.c — database calls that yield the request coroutine under serve.
 *
 * `db:exec` (host/core/sqlite.c) blocks its thread until the database
 * thread has committed the job.  Inside a request coroutine the worker's
 * state has this version instead: it hands the job to the database thread
 * and yields; the database thread, once the job's transaction has
 * committed, queues the job for the worker and wakes its event loop
 * (event_active is thread-safe), which resumes the coroutine with the
 * results.  The event loop never waits on SQLite's locks or the disk.
 * Outside a request (APP.lua's top level, a coroutine the handler made
 * itself, a non-yieldable C boundary) the blocking version runs.
 */
#include <pthread.h>
#include <stdlib.h>

#include "serve.h"
#include "core/sqlite.h"

struct dbwait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sc_job *head, *tail;        /* committed jobs waiting for the loop */
    int pending;                /* submitted, not yet queued back */
    struct event *ev;
};

/* Database thread: queue the finished job for its worker and wake it. */
static void on_committed(sc_job *job)
{
    worker *w = job->owner;
    struct dbwait *d = w->db;
    pthread_mutex_lock(&d->mu);
    if (d->tail)
        d->tail->next = job;
    else
        d->head = job;
    d->tail = job;
    d->pending--;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    event_active(d->ev, EV_READ, 0);
}

/* Protected (coroutines_push): the job's results. */
static int push_results(lua_State *L)
{
    return sc_sqlite_push_result(L, lua_touserdata(L, 1));
}

/* Worker loop: resume each request whose job has come back. */
static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    struct dbwait *d = w->db;
    pthread_mutex_lock(&d->mu);
    sc_job *list = d->head;
    d->head = d->tail = NULL;
    pthread_mutex_unlock(&d->mu);
    while (list != NULL) {
        sc_job *job = list;
        request_run *run = job->owner_data;
        list = job->next;
        if (run == NULL) {                        /* its request was aborted */
            sc_job_free(job);
            continue;
        }
        run->dbjob = NULL;
        int n = coroutines_push(run, push_results, job);
        sc_job_free(job);
        coroutines_resume(run, n);
    }
}

/* db:exec(statements) under serve: submit and yield, or block outside a
 * request. */
static int dbwait_exec(lua_State *L)
{
    worker *w = lua_touserdata(L, lua_upvalueindex(1));
    request_run *run = coroutines_current(L, w);
    if (run == NULL)
        return sc_sqlite_exec_sync(L);
    sc_db *db = sc_sqlite_check(L, 1);
    sc_job *job = sc_sqlite_job(L, 2);            /* may raise; nothing submitted yet */
    job->done = on_committed;
    job->owner = w;
    job->owner_data = run;
    pthread_mutex_lock(&w->db->mu);
    w->db->pending++;
    pthread_mutex_unlock(&w->db->mu);
    run->dbjob = job;
    sc_db_submit(db, job);
    return lua_yield(L, 0);
}

void dbwait_install(lua_State *L, worker *w)
{
    luaL_getmetatable(L, "stripe_connect.sqlite");
    lua_getfield(L, -1, "__index");
    install_fn(L, w, "exec", dbwait_exec);
    lua_pop(L, 2);
}

void dbwait_cancel(request_run *run)
{
    if (run->dbjob != NULL)
        run->dbjob->owner_data = NULL;            /* freed when it comes back */
    run->dbjob = NULL;
}

int dbwait_init(worker *w)
{
    struct dbwait *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->ev = event_new(w->base, -1, 0, on_ready, w);
    w->db = d;
    return d->ev != NULL ? 0 : -1;
}

/* After the worker's loop and state are gone: wait for the jobs still on a
 * database thread (shared with other workers), then free them. */
void dbwait_close(worker *w)
{
    struct dbwait *d = w->db;
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    while (d->pending > 0)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    while (d->head != NULL) {
        sc_job *job = d->head;
        d->head = job->next;
        sc_job_free(job);
    }
    if (d->ev)
        event_free(d->ev);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
    w->db = NULL;
}
