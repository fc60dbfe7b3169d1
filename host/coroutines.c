/*
 * coroutines.c — each request as a coroutine of the worker's lua_State.
 *
 * The coroutine runs the runner (runner.c) on the parsed request, which
 * builds the request table inside the coroutine.  It is anchored in the
 * registry while it lives and found again through the registry (never a
 * kept lua_State*); its extra space points at its request_run so that the
 * yielding http_request/sleep (upstream.c) find their request.  A coroutine
 * that finished normally is kept (w->idle_co) for a later request instead
 * of a new one each time; one that raised or is left suspended is dropped,
 * as its to-be-closed variables must not be closed by a reset.  Every entry
 * into Lua from here is protected: the coroutine itself through lua_resume,
 * the rest (creating it, handing it a transfer's results, formatting a
 * traceback) through lua_pcall on the main thread, so that even a memory
 * error answers 500 instead of a panic inside a libevent or libcurl
 * callback.
 *
 * Runaway handlers: budget.c counts the instructions of a request that
 * holds its worker (over budget: 500).
 */
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static const char error_head[] = "Content-Type: text/plain; charset=utf-8\r\n";
static const char error_body[] = "500 Internal Server Error\n";

/* Call f(arg) protected on the worker's main thread, leaving nres results
 * (LUA_MULTRET: all).  On error (memory only) log it and push nothing. */
static int pcall_main(worker *w, lua_CFunction f, void *arg, int nres)
{
    lua_State *L = w->L;
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, arg);
    int status = lua_pcall(L, 1, nres, 0);
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        log_error("worker %d: %s", w->id, msg ? msg : "error in the host");
        lua_pop(L, 1);
    }
    return status;
}

/* Protected: a new coroutine for the request, anchored in the registry. */
static int new_thread_p(lua_State *L)
{
    request_run *run = lua_touserdata(L, 1);
    lua_newthread(L);
    run->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Give run a coroutine: one that finished normally before (w->idle_co: no
 * stack, no pending to-be-closed variable, its hook reset by run_free) or
 * a new one; then point its extra space at run.  0 or -1 (logged). */
static int run_attach_thread(request_run *run)
{
    worker *w = run->w;
    if (w->nidle_co > 0)
        run->co_ref = w->idle_co[--w->nidle_co];
    else if (pcall_main(w, new_thread_p, run, 0) != LUA_OK)
        return -1;
    lua_rawgeti(w->L, LUA_REGISTRYINDEX, run->co_ref);
    *(request_run **)lua_getextraspace(lua_tothread(w->L, -1)) = run;
    lua_pop(w->L, 1);
    return 0;
}

/* The request's coroutine, or NULL before it exists. */
static lua_State *run_thread(request_run *run)
{
    lua_State *L = run->w->L;
    if (run->co_ref == LUA_NOREF)
        return NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->co_ref);
    lua_State *co = lua_tothread(L, -1);
    lua_pop(L, 1);
    return co;
}

/* Drop a run and its coroutine (the connection is not touched).
 * A coroutine the handler stashed somewhere no longer points at run. */
static void run_free(request_run *run)
{
    worker *w = run->w;
    lua_State *co = run_thread(run);
    if (co != NULL) {
        *(request_run **)lua_getextraspace(co) = NULL;
        budget_reset(co);
        int keep = run->reusable && w->nidle_co < (int)(sizeof w->idle_co / sizeof w->idle_co[0]);
        if (keep) {
            lua_settop(co, 0);
            w->idle_co[w->nidle_co++] = run->co_ref;
        } else {
            luaL_unref(w->L, LUA_REGISTRYINDEX, run->co_ref);
        }
    }
    if (run->task != NULL)
        task_set_run(run->task, NULL);
    if (run->prev)
        run->prev->next = run->next;
    else
        w->runs = run->next;
    if (run->next)
        run->next->prev = run->prev;
    free(run);
}

static void respond_500(conn *c)
{
    conn_respond(c, 500, error_head, sizeof error_head - 1, error_body, sizeof error_body - 1);
}

static void answer_500(request_run *run)
{
    if (run->c != NULL)                          /* NULL: a task, nobody to answer */
        respond_500(run->c);
    run_free(run);
}

/* A run for a request on c, or a task's run (c NULL, t set), linked
 * into the worker's list and given a coroutine: run, or NULL (out of memory;
 * a run that got no coroutine is answered 500 / dropped here). */
static request_run *run_new(worker *w, conn *c, task *t)
{
    request_run *run = calloc(1, sizeof *run);
    if (run == NULL) {
        if (c != NULL)
            respond_500(c);
        else
            log_error("worker %d: task: out of memory", w->id);
        return NULL;
    }
    run->w = w;
    run->c = c;
    run->task = t;
    run->co_ref = run->xfer_ref = LUA_NOREF;
    run->budget = w->opts->max_instructions;
    run->next = w->runs;
    if (w->runs)
        w->runs->prev = run;
    w->runs = run;
    if (t != NULL)
        task_set_run(t, run);
    if (run_attach_thread(run) != 0) {
        answer_500(run);
        return NULL;
    }
    return run;
}

void coroutines_start(worker *w, conn *c, const http_request *r)
{
    request_run *run = run_new(w, c, NULL);
    if (run == NULL)
        return;
    lua_State *co = run_thread(run);            /* room for 2: LUA_MINSTACK */
    lua_rawgeti(co, LUA_REGISTRYINDEX, w->runner_ref);
    lua_pushlightuserdata(co, (void *)r);
    coroutines_resume(run, 1);
}

void coroutines_start_task(worker *w, task *t)
{
    request_run *run = run_new(w, NULL, t);
    if (run == NULL)
        return;
    lua_State *co = run_thread(run);
    lua_rawgeti(co, LUA_REGISTRYINDEX, task_fn_ref(t));
    coroutines_resume(run, 0);
}

int coroutines_push(request_run *run, lua_CFunction push, void *arg)
{
    lua_State *L = run->w->L, *co = run_thread(run);
    int top = lua_gettop(L);
    if (pcall_main(run->w, push, arg, LUA_MULTRET) != LUA_OK)
        return -1;
    int n = lua_gettop(L) - top;
    if (!lua_checkstack(co, n)) {
        lua_settop(L, top);
        log_error("worker %d: coroutine stack overflow", run->w->id);
        return -1;
    }
    lua_xmove(L, co, n);
    return n;
}

struct report_args {
    request_run *run;
    lua_State *co;
    const char *msg;        /* or NULL: the error object on co */
};

/* Protected: log a failed handler with the coroutine's traceback. */
static int report_p(lua_State *L)
{
    struct report_args *a = lua_touserdata(L, 1);
    const char *msg = a->msg;
    if (msg == NULL && lua_gettop(a->co) > 0) {
        lua_xmove(a->co, L, 1);
        msg = lua_tostring(L, -1);
    }
    luaL_traceback(L, a->co, msg ? msg : "(error object is not a string)", 0);
    if (a->run->c == NULL) {
        log_error("task error: %s", lua_tostring(L, -1));
        return 0;
    }
    const http_request *r = conn_request(a->run->c);
    log_error("handler error: %.*s %.*s: %s", (int)r->mlen, r->method, (int)r->plen, r->path,
              lua_tostring(L, -1));
    return 0;
}

/* The run is waiting on a transfer, a sleep, a database job or PostgreSQL. */
static int waiting(const request_run *run)
{
    return run->easy != NULL || run->timer != NULL || run->dbjob != NULL || run->pgop != NULL;
}

request_run *coroutines_current(lua_State *L, worker *w)
{
    request_run *run = *(request_run **)lua_getextraspace(L);
    if (run == NULL || run->w != w || !lua_isyieldable(L) || waiting(run))
        return NULL;
    return run;
}

/* Resume the coroutine with nargs values already on it (nargs < 0: they
 * could not be made; answer 500); when it finishes, answer and free run. */
void coroutines_resume(request_run *run, int nargs)
{
    worker *w = run->w;
    lua_State *co = run_thread(run);
    if (nargs < 0) {
        answer_500(run);
        return;
    }
    int nres = 0;
    int status = budget_resume(w, run, co, nargs, &nres);
    if (status == LUA_YIELD && waiting(run))
        return;                               /* resumed by upstream.c, dbwait.c or pgwait.c */
    struct report_args a = { run, co, NULL };
    run->reusable = status == LUA_OK;
    if (run->c == NULL && status == LUA_OK && run->budget > 0) {  /* a task's run ended */
        run_free(run);
        return;
    }
    if (status == LUA_OK && nres == 2 && run->budget > 0) {
        size_t bl;
        int code = (int)lua_tointeger(co, -2);
        const char *body = lua_tolstring(co, -1, &bl);
        conn_respond(run->c, code, w->head, w->headlen, body, bl);
        run_free(run);
        return;
    }
    if (status == LUA_YIELD)
        a.msg = "handler yielded outside http_request/sleep";
    else if (status == LUA_OK)
        a.msg = run->budget > 0 ? "handler returned no response" : budget_message;
    pcall_main(w, report_p, &a, 0);
    answer_500(run);
}

/* Abort every request still running (shutdown deadline passed). */
void coroutines_abort_all(worker *w)
{
    while (w->runs != NULL) {
        request_run *run = w->runs;
        upstream_cancel(run);
        dbwait_cancel(run);
        pgwait_cancel(run);
        run_free(run);
    }
}
