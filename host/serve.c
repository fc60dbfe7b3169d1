/*
 * serve.c — `stripe-connect serve APP.lua [OPTIONS]`: listening sockets,
 * worker threads and signals (the options are options.c's).
 *
 * The main thread parses options, claims the port (another process
 * listening on it refuses the start: SO_REUSEPORT would let this one join it
 * silently), binds one SO_REUSEPORT socket per worker on the same port (with
 * port 0, the first socket picks it and the others bind to it), creates each worker's event base and lua_State and loads
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

#include "serve.h"

/* Close a worker's listener (the main one or --metrics-listen's), if open. */
static void close_listener(struct evconnlistener **l)
{
    if (*l != NULL)
        evconnlistener_free(*l);
    *l = NULL;
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
    tasks_stop(w);
    close_listener(&w->listener);
    close_listener(&w->metrics_listener);
    conn_close_idle(w);
    if (w->nconns == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    struct timeval tv = seconds_tv(w->opts->shutdown_timeout);
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
    if (w->metrics_listener != NULL)
        evconnlistener_enable(w->metrics_listener);
}

/* accept() failed (out of file descriptors, most likely): pause accepting
 * for 100 ms instead of spinning on the ready listener. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    worker *w = arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_error("worker %d: accept: %s", w->id, evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    struct timeval tv = seconds_tv(0.1);
    event_base_once(w->base, -1, EV_TIMEOUT, on_resume_accept, w, &tv);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    budget_thread_init(w);
    event_base_dispatch(w->base);
    return NULL;
}

/* Free everything a worker owns (after its loop ended, or on setup failure). */
static void worker_free(worker *w)
{
    if (w->L != NULL)
        coroutines_abort_all(w);
    tasks_close(w);
    conn_free_all(w);
    close_listener(&w->listener);
    close_listener(&w->metrics_listener);
    upstream_close(w);
    apploader_close(w);
    dbwait_close(w);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->deadline_ev)
        event_free(w->deadline_ev);
    if (w->base)
        event_base_free(w->base);
}

/* A worker's event base.  With epoll's changelist, the event changes one
 * request makes (reading paused while it is handled, then resumed) cost no
 * system call when they cancel out before the loop polls again.  NULL on
 * failure. */
static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

/* Bind --metrics-listen for w (its port: the rest bind to the real one).
 * 0 or -1 (reported). */
static int metrics_setup(worker *w, serve_opts *o)
{
    int mport = o->metrics_port;
    int mfd = conn_listen_socket(o->metrics_host, o->metrics_port, &mport);
    if (mfd < 0) {
        log_error("cannot listen on %s:%d (--metrics-listen): %s", o->metrics_host, o->metrics_port,
                  strerror(errno));
        return -1;
    }
    o->metrics_port = mport;
    w->metrics_listener = evconnlistener_new(w->base, conn_accept_metrics, w,
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, mfd);
    if (w->metrics_listener == NULL) {
        close(mfd);
        log_error("cannot set up worker %d", w->id);
        return -1;
    }
    evconnlistener_set_error_cb(w->metrics_listener, on_accept_error);
    return 0;
}

/* Bind, create the base and state, load the app.  0 or -1 (reported). */
static int worker_setup(worker *w, serve_opts *o)
{
    int port = o->port;
    if (w->id == 1 && port != 0 && conn_claim_port(o->host, port) != 0) {
        log_error("cannot listen on %s:%d: %s", o->host, o->port,
                  errno == EADDRINUSE ? "in use (by another process)" : strerror(errno));
        return -1;
    }
    int fd = conn_listen_socket(o->host, o->port, &port);
    if (fd < 0) {
        log_error("cannot listen on %s:%d: %s", o->host, o->port, strerror(errno));
        return -1;
    }
    o->port = port;                       /* port 0: the rest bind to this one */
    w->base = new_base();
    if (w->base == NULL || conn_init(w, (conn_calls){ apploader_body_limit, coroutines_start }) != 0) {
        close(fd);
        log_error("cannot create an event base");
        return -1;
    }
    w->listener = evconnlistener_new(w->base, conn_accept, w,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (w->listener != NULL)
        evconnlistener_set_error_cb(w->listener, on_accept_error);
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->deadline_ev = evtimer_new(w->base, on_deadline, w);
    if (w->listener == NULL || w->stop_ev == NULL || w->deadline_ev == NULL
        || upstream_init(w) != 0 || dbwait_init(w) != 0) {
        if (w->listener == NULL)
            close(fd);
        log_error("cannot set up worker %d", w->id);
        return -1;
    }
    if (o->metrics_port >= 0 && metrics_setup(w, o) != 0)
        return -1;
    char *err = NULL;
    if (apploader_load(w, &err) != 0) {
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
                if (!ws[i].joined)
                    budget_join(&ws[i]);
                alive += !ws[i].joined;
            }
            if (alive == 0)
                return;
        }
    }
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

/* The ready line, and the metrics line after it, in one write: a reader
 * that has seen `listening on` has the metrics address too. */
static void print_ready(const serve_opts *o)
{
    char line[1024];
    int v6 = strchr(o->host, ':') != NULL;
    int n = snprintf(line, sizeof line, "listening on http://%s%s%s:%d\n", v6 ? "[" : "", o->host,
                     v6 ? "]" : "", o->port);
    if (o->metrics_port >= 0 && n > 0 && (size_t)n < sizeof line) {
        int mv6 = strchr(o->metrics_host, ':') != NULL;
        snprintf(line + n, sizeof line - (size_t)n, "metrics on http://%s%s%s:%d/metrics\n",
                 mv6 ? "[" : "", o->metrics_host, mv6 ? "]" : "", o->metrics_port);
    }
    fflush(stderr);
    ssize_t w = write(STDERR_FILENO, line, strlen(line));
    (void)w;
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
    if (ok && budget_watchdog_start(ws, o->workers) != 0) {
        log_error("cannot start the budget watchdog: %s", strerror(errno));
        ok = 0;
    }
    if (!ok) {
        for (int i = 0; i < started; i++)
            event_active(ws[i].stop_ev, EV_READ, 0);
        for (int i = 0; i < started; i++)
            pthread_join(ws[i].thread, NULL);
        return 1;
    }
    print_ready(o);
    wait_for_shutdown(ws, o->workers, set);
    budget_watchdog_stop();
    return 0;
}

int host_serve_main(int argc, char **argv)
{
    serve_opts o;
    int code = 0;
    if (options_parse(argc, argv, &o, &code) != 0)
        return code;
    log_set_format(o.log_format, o.app_name);
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
