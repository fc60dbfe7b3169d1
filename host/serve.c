/*
 * serve.c — `stripe-connect serve APP.lua [OPTIONS]`: options, listening
 * sockets, worker threads and signals.
 *
 * The main thread parses options, binds one SO_REUSEPORT socket per worker
 * on the same port (with port 0, the first socket picks it and the others
 * bind to it), creates each worker's event base and lua_State and loads
 * APP.lua into it, then starts the threads and prints the ready line.  From
 * then on it only waits for SIGTERM/SIGINT (blocked in every thread and
 * taken with sigtimedwait): the first one asks every worker to stop
 * accepting and drain, each worker ending when its connections are gone or
 * its shutdown deadline passes; a second signal cuts the drain short.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/thread.h>

#include "worker.h"

static const char serve_usage[] =
    "usage: stripe-connect serve APP.lua [OPTIONS]\n"
    "\n"
    "Serve the app APP.lua returns (a handler function or a routes table).\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT        address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
    "  --workers N               worker threads (default: number of CPUs)\n"
    "  --quiet                   no access log\n"
    "  --max-header-size BYTES   request line + headers (default 16384; 431 beyond)\n"
    "  --max-headers N           header count (default 100; 431 beyond)\n"
    "  --max-body-size BYTES     request body (default 1048576; 413 beyond)\n"
    "  --read-timeout SECONDS    to receive a whole request, and idle keep-alive (default 30)\n"
    "  --max-connections N       open connections per worker (default 1024; 503 beyond)\n"
    "  --max-instructions N      Lua VM instructions per request (default 100000000; 500 beyond)\n"
    "  --shutdown-timeout SECONDS  drain deadline on SIGTERM/SIGINT (default 10)\n"
    "  --help                    this help\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: serve: ", host_progname);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", serve_usage);
    return 2;
}

static int parse_number(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

/* HOST:PORT (or [v6]:PORT) into opts.  0 or -1. */
static int parse_listen(const char *s, serve_opts *o)
{
    const char *colon = strrchr(s, ':');
    double port;
    if (colon == NULL || colon == s || parse_number(colon + 1, 0, 65535, &port) != 0)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof o->host)
        return -1;
    memcpy(o->host, h, hl);
    o->host[hl] = '\0';
    o->port = (int)port;
    return 0;
}

/* A numeric option NAME VALUE into opts: 0, 1 (not a numeric option) or
 * -1 (bad value). */
static int numeric_option(const char *name, const char *v, serve_opts *o)
{
    static const struct { const char *name; double min, max; } num[] = {
        { "--workers", 1, 1024 },            { "--max-header-size", 256, 1 << 24 },
        { "--max-headers", 1, 10000 },       { "--max-body-size", 0, 1u << 31 },
        { "--read-timeout", 0.01, 86400 },   { "--max-connections", 1, 1000000 },
        { "--max-instructions", 1000, 1e15 }, { "--shutdown-timeout", 0, 86400 },
    };
    size_t k = 0, n = sizeof num / sizeof num[0];
    while (k < n && strcmp(num[k].name, name) != 0)
        k++;
    double d;
    if (k == n)
        return 1;
    if (parse_number(v, num[k].min, num[k].max, &d) != 0)
        return -1;
    switch (k) {
    case 0: o->workers = (int)d; break;
    case 1: o->max_header_size = (size_t)d; break;
    case 2: o->max_headers = (int)d; break;
    case 3: o->max_body_size = (size_t)d; break;
    case 4: o->read_timeout = d; break;
    case 5: o->max_connections = (int)d; break;
    case 6: o->max_instructions = (long)d; break;
    default: o->shutdown_timeout = d; break;
    }
    return 0;
}

/* An option taking a value (argv[i], argv[i + 1]) into opts.  0, or an
 * exit code (usage error) in *code. */
static int valued_option(const char *a, const char *v, serve_opts *o, int *code)
{
    int r;
    if (strcmp(a, "--listen") == 0) {
        if (parse_listen(v, o) == 0)
            return 0;
        *code = usage_error("bad --listen '%s' (want HOST:PORT)", v);
    } else if ((r = numeric_option(a, v, o)) == 0) {
        return 0;
    } else {
        *code = r > 0 ? usage_error("unknown option '%s'", a) : usage_error("bad value '%s'", v);
    }
    return -1;
}

/* Parse argv[2..] into opts.  0, or an exit code (0 for --help) in *code. */
static int parse_options(int argc, char **argv, serve_opts *o, int *code)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(serve_usage, stdout);
            *code = 0;
            return -1;
        }
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (a[0] != '-') {
            if (o->app != NULL) {
                *code = usage_error("unexpected argument '%s'", a);
                return -1;
            }
            o->app = a;
        } else if (i + 1 >= argc) {
            *code = usage_error("option '%s' needs a value", a);
            return -1;
        } else if (valued_option(a, argv[++i], o, code) != 0) {
            return -1;
        }
    }
    if (o->app == NULL) {
        *code = usage_error("missing APP.lua%s", "");
        return -1;
    }
    return 0;
}

/* Cross-thread stop request: stop accepting, drop idle connections, and
 * end the loop when the rest have finished or the deadline passes. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    if (w->stopping) {                    /* second signal: now */
        event_base_loopbreak(w->base);
        return;
    }
    w->stopping = 1;
    if (w->listener) {
        evconnlistener_free(w->listener);
        w->listener = NULL;
    }
    server_close_idle(w);
    if (w->nconns == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    double t = w->opts->shutdown_timeout;
    struct timeval tv = { (time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6) };
    evtimer_add(w->deadline_ev, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    log_error("worker %d: shutdown deadline passed with %d connection(s) open", w->id, w->nconns);
    event_base_loopbreak(w->base);
}

static void on_resume_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    if (w->listener != NULL)
        evconnlistener_enable(w->listener);
}

/* accept() failed (out of file descriptors, most likely): pause accepting
 * for 100 ms instead of spinning on the ready listener. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    worker *w = arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_error("worker %d: accept: %s", w->id, evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    struct timeval tv = { 0, 100000 };
    event_base_once(w->base, -1, EV_TIMEOUT, on_resume_accept, w, &tv);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

/* Free everything a worker owns (after its loop ended, or on setup failure). */
static void worker_free(worker *w)
{
    if (w->L != NULL)
        handler_abort_all(w);
    server_free_all(w);
    if (w->listener)
        evconnlistener_free(w->listener);
    upstream_close(w);
    app_close(w);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->deadline_ev)
        event_free(w->deadline_ev);
    if (w->base)
        event_base_free(w->base);
}

/* Bind, create the base and state, load the app.  0 or -1 (reported). */
static int worker_setup(worker *w, serve_opts *o)
{
    int port = o->port;
    int fd = server_listen_socket(o->host, o->port, &port);
    if (fd < 0) {
        log_error("cannot listen on %s:%d: %s", o->host, o->port, strerror(errno));
        return -1;
    }
    o->port = port;                       /* port 0: the rest bind to this one */
    w->base = event_base_new();
    if (w->base == NULL) {
        close(fd);
        log_error("cannot create an event base");
        return -1;
    }
    w->listener = evconnlistener_new(w->base, server_accept, w,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (w->listener != NULL)
        evconnlistener_set_error_cb(w->listener, on_accept_error);
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->deadline_ev = evtimer_new(w->base, on_deadline, w);
    if (w->listener == NULL || w->stop_ev == NULL || w->deadline_ev == NULL
        || upstream_init(w) != 0) {
        if (w->listener == NULL)
            close(fd);
        log_error("cannot set up worker %d", w->id);
        return -1;
    }
    char *err = NULL;
    if (app_load(w, &err) != 0) {
        log_error("%s", err ? err : "cannot load the app");
        free(err);
        return -1;
    }
    return 0;
}

/* Wait for SIGTERM/SIGINT, then for the workers.  Signals are blocked. */
static void wait_for_shutdown(worker *ws, int n, const sigset_t *set)
{
    int signals = 0;
    for (;;) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0) {
            signals++;
            for (int i = 0; i < n; i++)
                event_active(ws[i].stop_ev, EV_READ, 0);
        }
        if (signals > 0) {
            int alive = 0;
            for (int i = 0; i < n; i++) {
                if (!ws[i].joined && pthread_tryjoin_np(ws[i].thread, NULL) == 0)
                    ws[i].joined = 1;
                alive += !ws[i].joined;
            }
            if (alive == 0)
                return;
        }
    }
}

static void default_options(serve_opts *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->host, "127.0.0.1");
    o->port = 8080;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->workers = ncpu > 0 ? (int)ncpu : 1;
    o->max_header_size = 16384;
    o->max_headers = 100;
    o->max_body_size = 1024 * 1024;
    o->read_timeout = 30;
    o->max_connections = 1024;
    o->max_instructions = 100000000L;
    o->shutdown_timeout = 10;
}

/* Process-wide setup: SIGTERM/SIGINT blocked (into *set, for
 * sigtimedwait), SIGPIPE ignored, the open-files limit raised, libevent
 * locking, curl. */
static void process_setup(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Connections and upstream sockets are file descriptors: allow what the
     * hard limit allows (as nginx's worker_rlimit_nofile would). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Set up and start every worker, print the ready line, serve until the
 * workers have drained after a signal.  0, or 1 when setup failed. */
static int run_workers(worker *ws, serve_opts *o, const sigset_t *set)
{
    int ok = 1, started = 0;
    for (int i = 0; ok && i < o->workers; i++) {
        ws[i].id = i + 1;
        ws[i].opts = o;
        ok = worker_setup(&ws[i], o) == 0;
    }
    for (int i = 0; ok && i < o->workers; i++) {
        ok = pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) == 0;
        started += ok;
    }
    if (!ok) {
        for (int i = 0; i < started; i++)
            event_active(ws[i].stop_ev, EV_READ, 0);
        for (int i = 0; i < started; i++)
            pthread_join(ws[i].thread, NULL);
        return 1;
    }
    int v6 = strchr(o->host, ':') != NULL;
    fprintf(stderr, "listening on http://%s%s%s:%d\n", v6 ? "[" : "", o->host, v6 ? "]" : "",
            o->port);
    fflush(stderr);
    wait_for_shutdown(ws, o->workers, set);
    return 0;
}

int host_serve_main(int argc, char **argv)
{
    serve_opts o;
    default_options(&o);
    int code = 0;
    if (parse_options(argc, argv, &o, &code) != 0)
        return code;
    sigset_t set;
    process_setup(&set);
    worker *ws = calloc((size_t)o.workers, sizeof *ws);
    if (ws == NULL)
        log_error("cannot allocate %d workers", o.workers);
    code = ws != NULL ? run_workers(ws, &o, &set) : 1;
    for (int i = 0; ws != NULL && i < o.workers; i++)
        worker_free(&ws[i]);
    free(ws);
    curl_global_cleanup();
    libevent_global_shutdown();
    return code;
}
