/*
 * serve.h — what the files of `stripe-connect serve` share.
 *
 *   options.c     the command line: defaults, usage, parsing
 *   serve.c       listening sockets, worker threads, signals
 *   conn.c        HTTP/1.1 connections on bufferevents: deadlines, framing, keep-alive
 *   request.c     parsing one request: request line, headers, body, limits
 *   apploader.c   the worker's lua_State: APP.lua and the router
 *   runner.c      each request coroutine's body: request table, dispatch, response table
 *   coroutines.c  each request as a coroutine: start, resume, 500s
 *   budget.c      the instruction budget: a watchdog starts counting a request
 *                 that holds its worker; coroutine.resume/wrap
 *   upstream.c    curl multi on the worker's event base; yielding http_request/sleep
 *   dbwait.c      the store's database jobs: yield the request until committed
 *   pgwait.c      PostgreSQL on libpq's async API: yield the request until answered
 *   tasks.c       core.every: periodic Lua tasks run as coroutines on worker 1
 *   log.c         access log and error lines on stderr
 *
 * Each worker thread owns one event_base, one lua_State and one curl multi
 * handle; nothing in a worker is touched by another thread except the stop
 * event (event_active is thread-safe with evthread_use_pthreads).
 */
#ifndef SC_SERVE_H
#define SC_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "host.h"
#include "core/core.h"

typedef struct serve_opts {
    const char *app;            /* APP.lua */
    char host[256];             /* listen address, as given */
    int port;                   /* the real port once bound */
    int workers;
    int quiet;                  /* no access log */
    size_t max_header_size;     /* request line + headers, bytes (431 beyond) */
    size_t max_body_size;       /* bytes (413 beyond) */
    int max_headers;            /* header count (431 beyond) */
    double read_timeout;        /* whole request / idle keep-alive, seconds */
    int max_connections;        /* per worker (503 beyond) */
    double shutdown_timeout;    /* drain deadline, seconds */
    long max_instructions;      /* per request Lua VM budget */
    int log_format;             /* LOG_TEXT, LOG_LOGFMT, LOG_JSON (--log-format) */
    const char *app_name;       /* APP.lua's base name without .lua, for log lines */
    char app_buf[64];
    char metrics_host[256];     /* --metrics-listen address, as given */
    int metrics_port;           /* its real port once bound; -1: no metrics listener */
} serve_opts;

enum { LOG_TEXT, LOG_LOGFMT, LOG_JSON };

/* s seconds (non-negative) as a struct timeval, for libevent's timers: the
 * one way serve's files make a timeval (milliseconds: seconds_tv(ms / 1e3)).
 * Rounded to the microsecond, so 0.001 s is 1000 µs, not 999. */
static inline struct timeval seconds_tv(double s)
{
    time_t sec = (time_t)s;
    long usec = (long)((s - (double)sec) * 1e6 + 0.5);
    if (usec >= 1000000) {
        sec++;
        usec -= 1000000;
    }
    struct timeval tv = { sec, (suseconds_t)usec };
    return tv;
}

typedef struct conn conn;
typedef struct worker worker;
typedef struct request_run request_run;
typedef struct task task;

/* t[name] = f as a C closure over w (its upvalue 1), t the table on top of
 * L: how serve's files put their versions of functions in a worker's
 * state.  Stack: [-0, +0]. */
static inline void install_fn(lua_State *L, worker *w, const char *name, lua_CFunction f)
{
    lua_pushlightuserdata(L, w);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, name);
}
struct dbwait;
struct sc_job;
struct pgop;

/* A parsed request; every pointer stays valid until the response is sent.
 * Header names are lower-cased. */
typedef struct http_header {
    const char *name, *value;
    size_t nlen, vlen;
} http_header;

typedef struct http_request {
    const char *method, *path, *query, *body;
    size_t mlen, plen, qlen, blen;
    http_header *headers;
    int nheaders;
    const char *remote;
    int remote_port;
    const char *request_id;     /* X-Request-Id: the client's when valid, else made here */
    size_t ridlen;
} http_request;

/* The parse state of the request a connection is reading (request.c). */
typedef struct request_parse {
    http_request req;
    char *head;                 /* the header block (in head_buf), or NULL: none yet */
    char *head_buf;             /* owned, head_cap bytes; req points into it */
    size_t head_cap;
    http_header *headers;       /* owned, headers_cap entries */
    int headers_cap;
    char *flat_body;            /* owned; req.body */
    struct evbuffer *body;      /* body bytes as they arrive */
    long long content_length;   /* -1: none */
    long long chunk_left;       /* chunked decoder state */
    size_t trailer_bytes;
    size_t max_body;            /* this request's body limit (the route's, capped by --max-body-size) */
    size_t max_trailer;         /* trailer bytes (--max-header-size) */
    int minor;                  /* HTTP/1.minor */
    int keep_alive, chunked, expect_continue, is_head;
} request_parse;

/* What the connections of a worker hand their requests to (conn_init):
 * conn.c knows no handler by name, so it can run under another one. */
typedef struct conn_calls {
    /* The body limit of r's route, capped by max (apploader_body_limit). */
    size_t (*body_limit)(worker *w, const http_request *r, size_t max);
    /* Run the request; the connection waits for conn_respond (coroutines_start). */
    void (*request)(worker *w, conn *c, const http_request *r);
} conn_calls;

struct worker {
    int id;
    pthread_t thread;
    const serve_opts *opts;
    struct event_base *base;
    struct evconnlistener *listener;
    struct evconnlistener *metrics_listener;    /* --metrics-listen, or NULL */
    char reqid_prefix[16];      /* random per worker; request ids are prefix + counter */
    unsigned long reqid_seq;
    struct event *stop_ev, *deadline_ev;
    const struct timeval *read_tv, *linger_tv;  /* common timeouts (conn_init) */
    conn_calls calls;           /* where conn.c hands each request (conn_init) */
    time_t date_sec;            /* the second date[] was formatted for */
    char date[64];              /* "Date: ...\r\n" */
    size_t datelen;
    lua_State *L;
    int runner_ref;             /* the Lua function each request coroutine runs */
    int limit_ref;              /* the router's body_limit(method, path), or LUA_NOREF */
    int idle_co[64];            /* registry refs of finished coroutines to reuse */
    int nidle_co;
    char *head;                 /* the response head lines runner.c converted */
    size_t headlen, headcap;
    CURLM *multi;
    CURLSH *share;
    struct event *curl_timer;
    CURL *pool[64];             /* idle easy handles */
    int npool;
    request_run *runs;          /* all running requests */
    request_run *running;       /* the one being resumed, or NULL */
    /* budget.c: what runs Lua now, for the signal handler, and since when
     * (monotonic µs, 0 when not in Lua) and whether it was kicked, for the
     * watchdog thread. */
    lua_State *volatile live;
    request_run *volatile live_run;
    _Atomic long long live_since;
    atomic_int kicked;
    struct dbwait *db;          /* database jobs coming back (dbwait.c) */
    task *tasks;                /* core.every's timers (tasks.c) */
    conn *conns;                /* all open connections */
    int nconns;
    int stopping;
    int joined;                 /* main thread: thread has been joined */
};

/* One request's run (or a task's): its coroutine and what it waits on.  In C
 * a `run` is always this; the Lua library's `ctx` is the platform, never a
 * request. */
struct request_run {
    worker *w;
    conn *c;                    /* NULL for a task's run (tasks.c) */
    task *task;                 /* the task this run is, or NULL */
    int co_ref;                 /* registry ref of the coroutine */
    int reusable;               /* it finished normally: back to w->idle_co */
    int counting;               /* its instructions are counted (budget.c) */
    int xfer_ref;               /* registry ref of a pending transfer, or LUA_NOREF */
    CURL *easy;                 /* pending transfer's handle, or NULL */
    struct event *timer;        /* pending sleep, or NULL */
    struct sc_job *dbjob;       /* pending database job, or NULL */
    struct pgop *pgop;          /* pending PostgreSQL connect or query, or NULL */
    long budget;                /* instructions left */
    request_run *prev, *next;
};

/* options.c: defaults, then argv[2..]; 0, or -1 with the exit code in *code
 * (0 after --help, 2 after a usage error, which is printed). */
int options_parse(int argc, char **argv, serve_opts *o, int *code);

/* request.c: read_head/read_body answer 1 (complete), 0 (need more input)
 * or -status (answer that status and close). */
void request_reset(request_parse *rq);
void request_free(request_parse *rq);
int request_read_head(request_parse *rq, const serve_opts *o, struct evbuffer *in);
int request_read_body(request_parse *rq, struct evbuffer *in);
/* 413 when the Content-Length is over rq->max_body, else 0. */
int request_check_length(const request_parse *rq);
/* A chunk-size line without its CRLF, extensions checked (RFC 9112 §7.1.1); 0 or -1. */
int request_parse_chunk_size(const char *line, size_t n, unsigned long long *size);

/* conn.c */
/* The worker's common timeouts, once its base exists, and the calls its
 * connections hand their requests to.  0 or -1. */
int conn_init(worker *w, conn_calls calls);
int conn_listen_socket(const char *host, int port, int *bound_port);
/* Refuse a port another process listens on (before the first bind); 0 or -1 with errno. */
int conn_claim_port(const char *host, int port);
void conn_accept_metrics(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int socklen, void *arg);
void conn_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                 int socklen, void *arg);
void conn_respond(conn *c, int status, const char *head, size_t headlen,
                  const char *body, size_t bodylen);
void conn_close_idle(worker *w);
const http_request *conn_request(const conn *c);
void conn_free_all(worker *w);

/* apploader.c */
int apploader_load(worker *w, char **errmsg);
/* The body limit of the route r goes to (the routes' max_body: 0 for GET
 * and HEAD routes and for no route, --max-body-size for the rest unless
 * declared), capped by max. */
size_t apploader_body_limit(worker *w, const http_request *r, size_t max);
void apploader_close(worker *w);

/* runner.c: make the runner from dispatch, parse_query, parse_cookies on
 * top (replaced by it).  Run on a coroutine with the http_request as a light
 * userdata, it returns status, body, with the header lines in w->head.
 * Stack: [-3, +1]. */
void runner_push(lua_State *L, worker *w);

/* coroutines.c */
/* Run the app for a parsed request; the connection waits for conn_respond. */
void coroutines_start(worker *w, conn *c, const http_request *r);
/* Call push(arg) protected on the main thread and move what it returns onto
 * the request's coroutine: the count, or -1 (logged) on a memory error. */
int coroutines_push(request_run *run, lua_CFunction push, void *arg);
void coroutines_resume(request_run *run, int nargs);
/* The run of the request whose coroutine L is, when it may yield for I/O
 * now (w's state, yieldable, waiting on nothing yet); NULL: outside a
 * request, where the blocking version runs. */
request_run *coroutines_current(lua_State *L, worker *w);
/* Run a task's function as a coroutine with a run of its own (no connection). */
void coroutines_start_task(worker *w, task *t);
void coroutines_abort_all(worker *w);

/* upstream.c */
int upstream_init(worker *w);
void upstream_install(lua_State *L, worker *w);
void upstream_cancel(request_run *run);
void upstream_close(worker *w);

/* budget.c */
extern const char budget_message[];
/* Register the worker and its coroutine.resume/wrap in a new state.  Stack: [-0, +0]. */
void budget_install(lua_State *L, worker *w);
/* lua_resume of a request's coroutine, for the watchdog to see. */
int budget_resume(worker *w, request_run *run, lua_State *co, int nargs, int *nres);
/* No hook on a coroutine going back to the pool. */
void budget_reset(lua_State *co);
void budget_thread_init(worker *w);
int budget_watchdog_start(worker *ws, int n);
/* pthread_tryjoin_np, never while the watchdog may signal the thread: 1 when joined. */
int budget_join(worker *w);
void budget_watchdog_stop(void);

/* dbwait.c */
int dbwait_init(worker *w);
/* Replace db:exec with the yielding version in L (core required).  Stack: [-0, +0]. */
void dbwait_install(lua_State *L, worker *w);
void dbwait_cancel(request_run *run);
void dbwait_close(worker *w);

/* pgwait.c */
/* Replace pg_connect and query with the yielding versions in L (core table
 * on top).  Stack: [-0, +0]. */
void pgwait_install(lua_State *L, worker *w);
void pgwait_cancel(request_run *run);
/* tasks.c */
/* core.every in the core table on top of L.  Stack: [-0, +0]. */
void tasks_install(lua_State *L, worker *w);
int task_fn_ref(const task *t);
void task_set_run(task *t, request_run *run);
void tasks_stop(worker *w);
void tasks_close(worker *w);

/* log.c */
void log_set_format(int format, const char *app);
void log_access(const worker *w, const char *request_id, size_t ridlen, const char *method,
                const char *path, size_t pathlen,
                int status, double ms, size_t bytes);
double log_now_ms(void);

#endif /* SC_SERVE_H */
