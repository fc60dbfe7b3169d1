/*
 * coroutines.c — each request as a coroutine of the worker's lua_State.
 *
 * The coroutine runs the runner (runner.c) on the parsed request, which
 * builds the request table inside the coroutine.  It is anchored in the
 * registry while it lives and found again through the registry (never a
 * kept lua_State*); its extra space points at its request_ctx so that the
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
    request_ctx *ctx = lua_touserdata(L, 1);
    lua_newthread(L);
    ctx->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Give ctx a coroutine: one that finished normally before (w->idle_co: no
 * stack, no pending to-be-closed variable, its hook reset by ctx_free) or
 * a new one; then point its extra space at ctx.  0 or -1 (logged). */
static int ctx_attach_thread(request_ctx *ctx)
{
    worker *w = ctx->w;
    if (w->nidle_co > 0)
        ctx->co_ref = w->idle_co[--w->nidle_co];
    else if (pcall_main(w, new_thread_p, ctx, 0) != LUA_OK)
        return -1;
    lua_rawgeti(w->L, LUA_REGISTRYINDEX, ctx->co_ref);
    *(request_ctx **)lua_getextraspace(lua_tothread(w->L, -1)) = ctx;
    lua_pop(w->L, 1);
    return 0;
}

/* The request's coroutine, or NULL before it exists. */
static lua_State *ctx_thread(request_ctx *ctx)
{
    lua_State *L = ctx->w->L;
    if (ctx->co_ref == LUA_NOREF)
        return NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->co_ref);
    lua_State *co = lua_tothread(L, -1);
    lua_pop(L, 1);
    return co;
}

/* Drop a request's coroutine and context (the connection is not touched).
 * A coroutine the handler stashed somewhere no longer points at ctx. */
static void ctx_free(request_ctx *ctx)
{
    worker *w = ctx->w;
    lua_State *co = ctx_thread(ctx);
    if (co != NULL) {
        *(request_ctx **)lua_getextraspace(co) = NULL;
        budget_reset(co);
        int keep = ctx->reusable && w->nidle_co < (int)(sizeof w->idle_co / sizeof w->idle_co[0]);
        if (keep) {
            lua_settop(co, 0);
            w->idle_co[w->nidle_co++] = ctx->co_ref;
        } else {
            luaL_unref(w->L, LUA_REGISTRYINDEX, ctx->co_ref);
        }
    }
    if (ctx->task != NULL)
        task_set_run(ctx->task, NULL);
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        w->ctxs = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    free(ctx);
}

static void answer_500(request_ctx *ctx)
{
    if (ctx->c == NULL) {                        /* a task: nobody to answer */
        ctx_free(ctx);
        return;
    }
    conn_respond(ctx->c, 500, error_head, sizeof error_head - 1, error_body,
                   sizeof error_body - 1);
    ctx_free(ctx);
}

/* A context for a request on c, or a task's run (c NULL, t set), linked
 * into the worker's list and given a coroutine: ctx, or NULL (out of memory;
 * a ctx that got no coroutine is answered 500 / dropped here). */
static request_ctx *ctx_new(worker *w, conn *c, task *t)
{
    request_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        if (c != NULL)
            conn_respond(c, 500, error_head, sizeof error_head - 1, error_body,
                           sizeof error_body - 1);
        else
            log_error("worker %d: task: out of memory", w->id);
        return NULL;
    }
    ctx->w = w;
    ctx->c = c;
    ctx->task = t;
    ctx->co_ref = ctx->xfer_ref = LUA_NOREF;
    ctx->budget = w->opts->max_instructions;
    ctx->next = w->ctxs;
    if (w->ctxs)
        w->ctxs->prev = ctx;
    w->ctxs = ctx;
    if (t != NULL)
        task_set_run(t, ctx);
    if (ctx_attach_thread(ctx) != 0) {
        answer_500(ctx);
        return NULL;
    }
    return ctx;
}

void coroutines_start(worker *w, conn *c, const http_request *r)
{
    request_ctx *ctx = ctx_new(w, c, NULL);
    if (ctx == NULL)
        return;
    lua_State *co = ctx_thread(ctx);            /* room for 2: LUA_MINSTACK */
    lua_rawgeti(co, LUA_REGISTRYINDEX, w->runner_ref);
    lua_pushlightuserdata(co, (void *)r);
    coroutines_resume(ctx, 1);
}

void coroutines_start_task(worker *w, task *t)
{
    request_ctx *ctx = ctx_new(w, NULL, t);
    if (ctx == NULL)
        return;
    lua_State *co = ctx_thread(ctx);
    lua_rawgeti(co, LUA_REGISTRYINDEX, task_fn_ref(t));
    coroutines_resume(ctx, 0);
}

int coroutines_push(request_ctx *ctx, lua_CFunction push, void *arg)
{
    lua_State *L = ctx->w->L, *co = ctx_thread(ctx);
    int top = lua_gettop(L);
    if (pcall_main(ctx->w, push, arg, LUA_MULTRET) != LUA_OK)
        return -1;
    int n = lua_gettop(L) - top;
    if (!lua_checkstack(co, n)) {
        lua_settop(L, top);
        log_error("worker %d: coroutine stack overflow", ctx->w->id);
        return -1;
    }
    lua_xmove(L, co, n);
    return n;
}

struct report_args {
    request_ctx *ctx;
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
    if (a->ctx->c == NULL) {
        log_error("task error: %s", lua_tostring(L, -1));
        return 0;
    }
    const http_request *r = conn_request(a->ctx->c);
    log_error("handler error: %.*s %.*s: %s", (int)r->mlen, r->method, (int)r->plen, r->path,
              lua_tostring(L, -1));
    return 0;
}

/* Resume the coroutine with nargs values already on it (nargs < 0: they
 * could not be made; answer 500); when it finishes, answer and free ctx. */
void coroutines_resume(request_ctx *ctx, int nargs)
{
    worker *w = ctx->w;
    lua_State *co = ctx_thread(ctx);
    if (nargs < 0) {
        answer_500(ctx);
        return;
    }
    int nres = 0;
    int status = budget_resume(w, ctx, co, nargs, &nres);
    if (status == LUA_YIELD && (ctx->easy != NULL || ctx->timer != NULL || ctx->dbjob != NULL
                                  || ctx->pgop != NULL))
        return;                               /* resumed by upstream.c, dbwait.c or pgwait.c */
    struct report_args a = { ctx, co, NULL };
    ctx->reusable = status == LUA_OK;
    if (ctx->c == NULL && status == LUA_OK && ctx->budget > 0) {  /* a task's run ended */
        ctx_free(ctx);
        return;
    }
    if (status == LUA_OK && nres == 2 && ctx->budget > 0) {
        size_t bl;
        int code = (int)lua_tointeger(co, -2);
        const char *body = lua_tolstring(co, -1, &bl);
        conn_respond(ctx->c, code, w->head, w->headlen, body, bl);
        ctx_free(ctx);
        return;
    }
    if (status == LUA_YIELD)
        a.msg = "handler yielded outside http_request/sleep";
    else if (status == LUA_OK)
        a.msg = ctx->budget > 0 ? "handler returned no response" : budget_message;
    pcall_main(w, report_p, &a, 0);
    answer_500(ctx);
}

/* Abort every request still running (shutdown deadline passed). */
void coroutines_abort_all(worker *w)
{
    while (w->ctxs != NULL) {
        request_ctx *ctx = w->ctxs;
        upstream_cancel(ctx);
        dbwait_cancel(ctx);
        pgwait_cancel(ctx);
        ctx_free(ctx);
    }
}
