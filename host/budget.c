/*
 * budget.c — the instruction budget of runaway handlers, counted only once
 * a request has held its worker for a while.
 *
 * Lua 5.4 runs every VM instruction through the hook dispatcher while a
 * count hook is set (twice the time for plain Lua code), so no hook is set
 * while requests behave.  A watchdog thread looks at every worker each
 * WATCH_US: one that has been inside Lua for KICK_US without coming back to
 * its event loop gets SIGUSR2, and the signal handler (on that worker's
 * thread, as lua.c does for SIGINT) sets the count hook on the thread
 * running Lua at that moment.  From then on the request's instructions are
 * counted — in its coroutine and in every coroutine it resumes, which is
 * why coroutine.resume and coroutine.wrap are this file's in the worker's
 * state: they keep `w->live` (the thread running Lua) up to date and carry
 * the hook along.  Over budget the hook raises on every instruction, so a
 * pcall loop cannot swallow it.  What ran before the kick (at most about
 * KICK_US of Lua) is not counted: a handler that quick is not a runaway.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

#define HOOK_STEP 1000                  /* instructions per hook call */
#define WATCH_US 5000                   /* the watchdog's period */
#define KICK_US 10000                   /* Lua time without a break before counting */

const char budget_message[] = "request exceeded its instruction budget";

static const char worker_key = 'w';     /* registry: the worker (light userdata) */
static _Thread_local worker *kick_worker;

static long long now_us(void)
{
    return (long long)(sc_monotonic() * 1e6);
}

/* Count hook: charge the request being resumed; over budget, raise on
 * every instruction from now on. */
static void budget_hook(lua_State *co, lua_Debug *ar)
{
    (void)ar;
    request_run *run = *(request_run **)lua_getextraspace(co);
    if (run == NULL) {                   /* a handler's own coroutine */
        lua_rawgetp(co, LUA_REGISTRYINDEX, &worker_key);
        worker *w = lua_touserdata(co, -1);
        lua_pop(co, 1);
        run = w != NULL ? w->running : NULL;
        if (run == NULL)
            return;
    }
    run->budget -= HOOK_STEP;
    if (run->budget <= 0) {
        lua_sethook(co, budget_hook, LUA_MASKCOUNT, 1);
        lua_pushstring(co, budget_message);
        lua_error(co);
    }
}

static void arm(lua_State *co)
{
    lua_sethook(co, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
}

void budget_reset(lua_State *co)
{
    lua_sethook(co, NULL, 0, 0);
}

/* SIGUSR2, on a worker's thread: start counting the running request. */
static void on_kick(int sig)
{
    (void)sig;
    worker *w = kick_worker;
    if (w == NULL || w->live == NULL || w->live_run == NULL)
        return;
    w->live_run->counting = 1;
    arm(w->live);
}

int budget_resume(worker *w, request_run *run, lua_State *co, int nargs, int *nres)
{
    request_run *outer_run = w->running;
    lua_State *outer_live = w->live;
    w->running = run;
    w->live_run = run;
    w->live = co;
    if (run->counting)
        arm(co);
    if (outer_run == NULL) {
        atomic_store(&w->kicked, 0);
        atomic_store(&w->live_since, now_us());
    }
    int status = lua_resume(co, w->L, nargs, nres);
    if (outer_run == NULL)
        atomic_store(&w->live_since, 0);
    w->live = outer_live;
    w->live_run = outer_run;
    w->running = outer_run;
    return status;
}

/* ------------------------------------------- coroutine.resume and .wrap */

/* lcorolib's auxresume, keeping w->live and the hook: the values on L's
 * top narg slots go to co; its results (count) or an error (-1, the error
 * on L) come back. */
static int aux_resume(lua_State *L, lua_State *co, int narg)
{
    worker *w = lua_touserdata(L, lua_upvalueindex(1));
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    lua_State *outer = w->live;
    int counting = w->running != NULL && w->running->counting;
    if (counting)
        arm(co);
    w->live = co;
    int nres = 0;
    int status = lua_resume(co, L, narg, &nres);
    w->live = outer;
    if (w->running != NULL && w->running->counting && !counting)
        arm(L);                         /* the kick came while co ran */
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    int r = aux_resume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

#if LUA_VERSION_RELEASE_NUM >= 50406
#define close_thread(co, L) lua_closethread((co), (L))
#else
#define close_thread(co, L) ((void)(L), lua_resetthread(co))
#endif

/* The function coroutine.wrap returns (upvalues: the worker, the thread). */
static int co_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(2));
    int r = aux_resume(L, co, lua_gettop(L));
    if (r >= 0)
        return r;
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {  /* an error in the coroutine */
        stat = close_thread(co, L);
        lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, -2);
    lua_pushcclosure(L, co_wrapped, 2);
    return 1;
}

void budget_install(lua_State *L, worker *w)
{
    lua_pushlightuserdata(L, w);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &worker_key);
    lua_getglobal(L, "coroutine");
    if (lua_istable(L, -1)) {
        install_fn(L, w, "resume", co_resume);
        install_fn(L, w, "wrap", co_wrap);
    }
    lua_pop(L, 1);
}

/* ------------------------------------------------------------ watchdog */

static struct {
    worker *ws;
    int n;
    pthread_t thread;
    pthread_mutex_t mu;                 /* held while kicking; see budget_join */
    int started, stop;
} wd = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void *watchdog_main(void *arg)
{
    (void)arg;
    struct timespec period = { 0, WATCH_US * 1000L };
    for (;;) {
        nanosleep(&period, NULL);
        pthread_mutex_lock(&wd.mu);
        if (wd.stop) {
            pthread_mutex_unlock(&wd.mu);
            return NULL;
        }
        long long now = now_us();
        for (int i = 0; i < wd.n; i++) {
            worker *w = &wd.ws[i];
            long long since = atomic_load(&w->live_since);
            if (!w->joined && since != 0 && now - since >= KICK_US && !atomic_exchange(&w->kicked, 1))
                pthread_kill(w->thread, SIGUSR2);
        }
        pthread_mutex_unlock(&wd.mu);
    }
}

int budget_watchdog_start(worker *ws, int n)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_kick;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0)
        return -1;
    wd.ws = ws;
    wd.n = n;
    wd.stop = 0;
    if (pthread_create(&wd.thread, NULL, watchdog_main, NULL) != 0)
        return -1;
    wd.started = 1;
    return 0;
}

void budget_thread_init(worker *w)
{
    kick_worker = w;
}

int budget_join(worker *w)
{
    pthread_mutex_lock(&wd.mu);
    int joined = pthread_tryjoin_np(w->thread, NULL) == 0;
    if (joined)
        w->joined = 1;
    pthread_mutex_unlock(&wd.mu);
    return joined;
}

void budget_watchdog_stop(void)
{
    if (!wd.started)
        return;
    pthread_mutex_lock(&wd.mu);
    wd.stop = 1;
    pthread_mutex_unlock(&wd.mu);
    pthread_join(wd.thread, NULL);
    wd.started = 0;
}
