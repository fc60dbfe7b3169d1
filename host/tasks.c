/*
 * tasks.c — `core.every(seconds, fn)` under serve: a periodic task.
 *
 * Only worker 1 arms the timer (one run per process, whatever --workers
 * says); on the other workers every() answers false and does nothing, so an
 * app calls it the same way in every worker's state.  Each tick runs fn() as
 * a coroutine of the worker's lua_State with a request_run of its own
 * (coroutines_start_task), so a store call inside it yields like a request's
 * (dbwait.c) and the event loop never waits on SQLite; http_request and
 * sleep yield too.  A tick that comes while the previous run is still going
 * is skipped.  A task that raises is logged with its traceback and runs
 * again at the next tick.  Timers stop when the worker starts to stop.
 */
#include <stdlib.h>

#include "serve.h"

struct task {
    worker *w;
    struct event *ev;
    int fn_ref;                 /* registry ref of fn in the worker's state */
    request_run *run;           /* the run in progress, or NULL */
    struct task *next;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    task *t = arg;
    if (t->run != NULL || t->w->stopping)
        return;
    coroutines_start_task(t->w, t);
}

/* every(seconds, fn) -> true (armed on this worker) | false (another worker runs it). */
static int tasks_every(lua_State *L)
{
    worker *w = lua_touserdata(L, lua_upvalueindex(1));
    lua_Number s = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, s >= 0.01 && s <= 86400, 1, "seconds must be from 0.01 to 86400");
    if (w->id != 1) {
        lua_pushboolean(L, 0);
        return 1;
    }
    task *t = calloc(1, sizeof *t);
    if (t == NULL)
        return luaL_error(L, "every: out of memory");
    t->w = w;
    t->ev = event_new(w->base, -1, EV_PERSIST, on_tick, t);
    if (t->ev == NULL) {
        free(t);
        return luaL_error(L, "every: out of memory");
    }
    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    struct timeval tv = seconds_tv(s);
    event_add(t->ev, &tv);
    t->next = w->tasks;
    w->tasks = t;
    lua_pushboolean(L, 1);
    return 1;
}

void tasks_install(lua_State *L, worker *w)
{
    install_fn(L, w, "every", tasks_every);
}

int task_fn_ref(const task *t)
{
    return t->fn_ref;
}

void task_set_run(task *t, request_run *run)
{
    t->run = run;
}

void tasks_stop(worker *w)
{
    for (task *t = w->tasks; t != NULL; t = t->next)
        event_del(t->ev);
}

/* After coroutines_abort_all (no run left), before the state and base go. */
void tasks_close(worker *w)
{
    while (w->tasks != NULL) {
        task *t = w->tasks;
        w->tasks = t->next;
        event_free(t->ev);
        free(t);
    }
}
