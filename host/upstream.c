/*
 * upstream.c — outbound HTTP and timers that yield the request coroutine.
 *
 * libcurl's multi interface runs on the worker's event base the way curl's
 * hiperfifo example does: curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to wake it (CURLMOPT_TIMERFUNCTION);
 * libevent calls curl_multi_socket_action; finished transfers resume their
 * coroutine with the same results as the synchronous client (http.h).
 * The multi handle's connection cache keeps upstream connections alive
 * across requests; a share handle keeps TLS sessions and DNS; idle easy
 * handles are pooled.  Outside a request coroutine (APP.lua's top level, a
 * coroutine the handler made itself, a non-yieldable C boundary) the calls
 * fall back to the blocking versions.  No Lua runs inside a curl callback.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"
#include "core/http.h"

static void check_done(worker *w);

/* libevent -> curl: socket activity. */
static void on_socket(evutil_socket_t fd, short kind, void *arg)
{
    worker *w = arg;
    int action = ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(w->multi, fd, action, &running);
    check_done(w);
}

/* libevent -> curl: curl's timeout expired. */
static void on_timeout(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    worker *w = arg;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

/* curl -> libevent: watch (or stop watching) a socket.  `sockp` is the
 * struct event assigned to it earlier. */
static int curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
    (void)e;
    worker *w = userp;
    struct event *ev = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (ev != NULL)
            event_free(ev);
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0)
                         | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (ev == NULL) {
        ev = event_new(w->base, s, kind, on_socket, w);
        if (ev == NULL)
            return -1;
        curl_multi_assign(w->multi, s, ev);
    } else {
        event_del(ev);
        event_assign(ev, w->base, s, kind, on_socket, w);
    }
    event_add(ev, NULL);
    return 0;
}

/* curl -> libevent: (re)arm the single multi timer. */
static int curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    worker *w = userp;
    if (timeout_ms < 0) {
        evtimer_del(w->curl_timer);
    } else {
        struct timeval tv = seconds_tv((double)timeout_ms / 1e3);
        evtimer_add(w->curl_timer, &tv);
    }
    return 0;
}

static CURL *pool_top(worker *w)
{
    if (w->npool == 0) {
        CURL *e = curl_easy_init();
        if (e == NULL)
            return NULL;
        w->pool[w->npool++] = e;
    }
    return w->pool[w->npool - 1];
}

static void pool_put(worker *w, CURL *e)
{
    int cap = (int)(sizeof w->pool / sizeof w->pool[0]);
    if (w->npool < cap) {
        curl_easy_reset(e);
        w->pool[w->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

struct result {
    sc_http_xfer *x;
    CURL *easy;
    CURLcode rc;
};

/* Protected (coroutines_push): a finished transfer's res | nil, message, code. */
static int push_result(lua_State *L)
{
    struct result *r = lua_touserdata(L, 1);
    return sc_http_push_result(L, r->x, r->easy, r->rc);
}

/* Hand a finished transfer's result to its coroutine and resume it.  The
 * transfer stays anchored (on L) until its result is made. */
static void finish(request_run *run, CURLcode rc)
{
    worker *w = run->w;
    lua_State *L = w->L;
    struct result r = { NULL, run->easy, rc };
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->xfer_ref);
    r.x = lua_touserdata(L, -1);
    int n = coroutines_push(run, push_result, &r);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, run->xfer_ref);
    run->xfer_ref = LUA_NOREF;
    run->easy = NULL;
    pool_put(w, r.easy);
    coroutines_resume(run, n);
}

static void check_done(worker *w)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        request_run *run = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&run);
        curl_multi_remove_handle(w->multi, easy);
        if (run != NULL)
            finish(run, rc);
    }
}

/* http_request(opts) under serve: start the transfer on the multi handle and
 * yield; finish() resumes with res | nil, message, code. */
static int upstream_http_request(lua_State *L)
{
    worker *w = lua_touserdata(L, lua_upvalueindex(1));
    request_run *run = coroutines_current(L, w);
    if (run == NULL)
        return sc_http_request_sync(L);
    CURL *easy = pool_top(w);
    if (easy == NULL)
        return luaL_error(L, "http_request: cannot create a curl handle");
    sc_http_xfer *ok = sc_http_prepare(L, 1, easy);   /* may raise; easy stays pooled */
    sc_http_xfer *x = lua_touserdata(L, -1);
    CURLcode rc = ok ? CURLE_OK : sc_http_setup_code(x);
    if (rc == CURLE_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)run);
        curl_easy_setopt(easy, CURLOPT_SHARE, w->share);
        if (curl_multi_add_handle(w->multi, easy) != CURLM_OK)
            rc = CURLE_FAILED_INIT;
    }
    if (rc != CURLE_OK)
        return sc_http_push_result(L, x, easy, rc);
    w->npool--;                                       /* easy now belongs to run */
    run->easy = easy;
    run->xfer_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return lua_yield(L, 0);
}

static void on_sleep_done(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    request_run *run = arg;
    event_free(run->timer);
    run->timer = NULL;
    coroutines_resume(run, 0);
}

/* sleep(seconds) under serve: an evtimer, then resume with no results. */
static int upstream_sleep(lua_State *L)
{
    worker *w = lua_touserdata(L, lua_upvalueindex(1));
    request_run *run = coroutines_current(L, w);
    if (run == NULL)
        return sc_sleep_sync(L);
    struct timeval tv = seconds_tv(sc_check_seconds(L, 1));
    run->timer = evtimer_new(w->base, on_sleep_done, run);
    if (run->timer == NULL)
        return luaL_error(L, "sleep: out of memory");
    evtimer_add(run->timer, &tv);
    return lua_yield(L, 0);
}

/* Replace http_request and sleep in the core table on top of L.  Stack: [-0, +0]. */
void upstream_install(lua_State *L, worker *w)
{
    install_fn(L, w, "http_request", upstream_http_request);
    install_fn(L, w, "sleep", upstream_sleep);
}

int upstream_init(worker *w)
{
    w->multi = curl_multi_init();
    w->share = curl_share_init();
    w->curl_timer = evtimer_new(w->base, on_timeout, w);
    if (w->multi == NULL || w->share == NULL || w->curl_timer == NULL)
        return -1;
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, curl_socket);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, (void *)w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, curl_timer);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, (void *)w);
    /* Idle connections kept per worker.  libcurl's default grows with the
     * transfers added (4 per easy handle): with a thousand callbacks in
     * flight, each code exchange on a fresh connection, the cache held
     * thousands of idle sockets and every transfer paid for walking it
     * (1000 concurrent callbacks: 1.5k/s -> 2.8k/s with 32). */
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, 32L);
    curl_share_setopt(w->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(w->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    return 0;
}

/* Stop whatever the request waits on (its coroutine is being dropped). */
void upstream_cancel(request_run *run)
{
    worker *w = run->w;
    if (run->easy != NULL) {
        curl_multi_remove_handle(w->multi, run->easy);
        curl_easy_cleanup(run->easy);
        run->easy = NULL;
        luaL_unref(w->L, LUA_REGISTRYINDEX, run->xfer_ref);
        run->xfer_ref = LUA_NOREF;
    }
    if (run->timer != NULL) {
        event_free(run->timer);
        run->timer = NULL;
    }
}

void upstream_close(worker *w)
{
    while (w->npool > 0)
        curl_easy_cleanup(w->pool[--w->npool]);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    if (w->share)
        curl_share_cleanup(w->share);
    if (w->curl_timer)
        event_free(w->curl_timer);
    w->multi = NULL;
    w->share = NULL;
    w->curl_timer = NULL;
}
