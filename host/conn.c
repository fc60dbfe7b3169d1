/*
 * conn.c — HTTP/1.1 server connections on libevent bufferevents.
 *
 * One request at a time per connection (pipelined requests wait in the
 * input buffer), keep-alive by default on 1.1 and on request on 1.0.
 * Parsing and the header/body limits are request.c's; here: a deadline for
 * receiving a whole request which is also the idle keep-alive timeout (the
 * connection is dropped), connections per worker (503 and close), error
 * answers (then a lingering close), response framing, keep-alive.  Reading
 * is paused while the handler runs, so a client that disappears is noticed
 * when its response is written.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#include <sys/random.h>

#include "serve.h"

enum { C_READ, C_HANDLE, C_WRITE, C_LINGER };
#define LINGER_SECONDS 2.0

struct conn {
    worker *w;
    conn *prev, *next;
    struct bufferevent *bev;
    struct event *deadline;
    char remote[INET6_ADDRSTRLEN];
    int remote_port;
    int state, dead;
    int metrics_only;           /* accepted on --metrics-listen */
    char reqid[65];             /* the current request's id (X-Request-Id) */
    size_t reqidlen;            /* 0: none (errors before a request was read) */
    request_parse rq;
    double start_ms;            /* first byte of the current request; < 0: none yet */
};

static void advance(conn *c);
static void response_sent(conn *c, int deferred);

const http_request *conn_request(const conn *c)
{
    return &c->rq.req;
}

/* A listening TCP socket on host:port with SO_REUSEPORT; -1 on failure
 * (errno set).  *bound_port receives the real port (for port 0). */
/* host:port as a passive TCP address; NULL (errno EADDRNOTAVAIL) when it is none. */
static struct addrinfo *resolve(const char *host, int port)
{
    struct addrinfo hints, *ai = NULL;
    char portstr[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL) {
        errno = EADDRNOTAVAIL;
        return NULL;
    }
    return ai;
}

int conn_listen_socket(const char *host, int port, int *bound_port)
{
    struct addrinfo *ai = resolve(host, port);
    if (ai == NULL)
        return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0
        || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        errno = e;
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Claim host:port for this process before its workers bind it with
 * SO_REUSEPORT (which lets any process of the same user join a port, and
 * then share its requests).  A plain bind (SO_REUSEADDR only, as a restart
 * beside TIME_WAIT connections needs) must succeed: it fails while anyone
 * listens there.  An abstract unix socket named after the address, held
 * until the process exits, keeps two serves starting at the same moment
 * from both passing.  0, or -1 with errno (EADDRINUSE: in use). */
int conn_claim_port(const char *host, int port)
{
    static int lock_fd = -1;
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    int n = snprintf(un.sun_path + 1, sizeof un.sun_path - 1, "stripe-connect-listen %s:%d", host, port);
    if (n < 0 || (size_t)n >= sizeof un.sun_path - 1)
        n = (int)sizeof un.sun_path - 2;
    int lk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lk < 0)
        return -1;
    if (bind(lk, (struct sockaddr *)&un, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) != 0) {
        int e = errno;
        close(lk);
        errno = e;
        return -1;
    }
    struct addrinfo *ai = resolve(host, port);
    if (ai == NULL) {
        close(lk);
        errno = EADDRNOTAVAIL;
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    int one = 1, ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0
                      && bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    if (!ok) {
        close(lk);
        errno = e;
        return -1;
    }
    if (lock_fd >= 0)
        close(lock_fd);
    lock_fd = lk;
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

static void conn_free(conn *c)
{
    worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    request_free(&c->rq);
    if (c->rq.body)
        evbuffer_free(c->rq.body);
    event_free(c->deadline);
    bufferevent_free(c->bev);
    free(c);
    if (w->stopping && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

/* The request deadline / idle timeout (shorter while lingering).  Both are
 * libevent common timeouts (conn_init), so re-arming is a queue append,
 * not a heap insertion. */
static void arm_deadline(conn *c)
{
    evtimer_add(c->deadline, c->state == C_LINGER ? c->w->linger_tv : c->w->read_tv);
}

/* A common timeout of t seconds on w's base (NULL: out of memory). */
static const struct timeval *common_timeout(worker *w, double t)
{
    struct timeval tv = seconds_tv(t);
    return event_base_init_common_timeout(w->base, &tv);
}

int conn_init(worker *w, conn_calls calls)
{
    w->calls = calls;
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return -1;
    snprintf(w->reqid_prefix, sizeof w->reqid_prefix, "%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5]);
    double t = w->opts->read_timeout;
    w->read_tv = common_timeout(w, t);
    w->linger_tv = common_timeout(w, t > LINGER_SECONDS ? LINGER_SECONDS : t);
    return w->read_tv != NULL && w->linger_tv != NULL ? 0 : -1;
}

/* Request deadline (or idle keep-alive timeout): drop the connection. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    if (c->state == C_READ || c->state == C_LINGER)
        conn_free(c);
}

/* Close after a response without losing it: a close() with unread input
 * would reset the connection and could destroy the response in flight, so
 * half-close, discard what the client still sends, and close on its EOF
 * (or after a short deadline). */
static void linger(conn *c)
{
    c->state = C_LINGER;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    arm_deadline(c);
    bufferevent_enable(c->bev, EV_READ);
}

/* "Date: ...\r\n" for the loop's cached time, formatted once per second. */
static const char *date_line(worker *w, size_t *len)
{
    struct timeval now;
    event_base_gettimeofday_cached(w->base, &now);
    if (now.tv_sec != w->date_sec || w->datelen == 0) {
        struct tm tm;
        time_t t = now.tv_sec;
        gmtime_r(&t, &tm);
        w->datelen = strftime(w->date, sizeof w->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        w->date_sec = now.tv_sec;
    }
    *len = w->datelen;
    return w->date;
}

/* Decimal digits of v at p; returns the end. */
static char *put_uint(char *p, size_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static char *put(char *p, const char *s, size_t n)
{
    if (n > 0)                  /* s may be NULL when n is 0 (memcpy's UB: UBSan) */
        memcpy(p, s, n);
    return p + n;
}

/* Write the whole response into the output buffer in one reservation (one
 * copy of head and body, one buffer callback).  -1: out of memory. */
static int add_response(conn *c, int status, const char *head, size_t headlen,
                        const char *body, size_t bodylen, int with_length, int send_body)
{
    size_t datelen;
    const char *date = date_line(c->w, &datelen);
    const char *why = reason(status);
    size_t total = 9 + 24 + strlen(why) + 2 + datelen + headlen + 16 + 24 + 24 + 2
                 + (c->reqidlen ? 16 + c->reqidlen : 0) + (send_body ? bodylen : 0);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)total, &v, 1) != 1)
        return -1;
    char *p = put(v.iov_base, "HTTP/1.1 ", 9);
    p = put_uint(p, (size_t)status);
    *p++ = ' ';
    p = put(p, why, strlen(why));
    p = put(p, "\r\n", 2);
    p = put(p, date, datelen);
    if (c->reqidlen) {
        p = put(p, "X-Request-Id: ", 14);
        p = put(p, c->reqid, c->reqidlen);
        p = put(p, "\r\n", 2);
    }
    p = put(p, head, headlen);
    if (with_length) {
        p = put(p, "Content-Length: ", 16);
        p = put_uint(p, bodylen);
        p = put(p, "\r\n", 2);
    }
    if (!c->rq.keep_alive)
        p = put(p, "Connection: close\r\n", 19);
    else if (c->rq.minor == 0)
        p = put(p, "Connection: keep-alive\r\n", 24);
    p = put(p, "\r\n", 2);
    if (send_body)
        p = put(p, body, bodylen);
    v.iov_len = (size_t)(p - (char *)v.iov_base);
    return evbuffer_commit_space(out, &v, 1);
}

/* Write what the output buffer holds now, without waiting for the loop;
 * what the socket does not take is left to the bufferevent (EV_WRITE, which
 * calls on_write once drained).  1: all written, 0: the rest is pending,
 * -1: the connection failed. */
static int flush(conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_unfreeze(out, 1);              /* as bufferevent_writecb does */
    int n = evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -1;
    if (evbuffer_get_length(out) == 0)
        return 1;
    bufferevent_enable(c->bev, EV_WRITE);
    return 0;
}

void conn_respond(conn *c, int status, const char *head, size_t headlen,
                  const char *body, size_t bodylen)
{
    worker *w = c->w;
    int no_body = status == 204 || status == 304 || status < 200;
    int send_body = !no_body && !c->rq.is_head && !c->dead;
    if (!w->opts->quiet) {
        const char *path = c->rq.req.path ? c->rq.req.path : "-";
        size_t plen = c->rq.req.path ? c->rq.req.plen : 1;
        double ms = c->start_ms < 0 ? 0 : log_now_ms() - c->start_ms;
        log_access(w, c->reqid, c->reqidlen, c->rq.req.method ? c->rq.req.method : "-", path, plen,
                   status, ms, send_body ? bodylen : 0);
    }
    if (c->dead) {
        conn_free(c);
        return;
    }
    if (w->stopping)
        c->rq.keep_alive = 0;
    c->state = C_WRITE;
    int r = add_response(c, status, head, headlen, body, bodylen, !no_body, send_body);
    c->reqidlen = 0;
    if (r == 0)
        r = flush(c);
    if (r < 0)
        conn_free(c);
    else if (r == 1)
        response_sent(c, 1);
}

/* A response from the server itself (errors before or instead of the app). */
static void respond_plain(conn *c, int status)
{
    char body[128];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason(status));
    static const char head[] = "Content-Type: text/plain; charset=utf-8\r\n";
    c->rq.keep_alive = 0;
    c->state = C_HANDLE;
    bufferevent_disable(c->bev, EV_READ);
    event_del(c->deadline);
    conn_respond(c, status, head, sizeof head - 1, body, (size_t)n);
}

/* The request's id: the client's X-Request-Id when it is 1-64 characters
 * of [A-Za-z0-9._:-] (a proxy's id ties our lines to its own), else the
 * worker's random prefix and a counter. */
static void set_request_id(conn *c)
{
    http_request *r = &c->rq.req;
    worker *w = c->w;
    c->reqidlen = 0;
    for (int i = 0; i < r->nheaders; i++) {
        const http_header *h = &r->headers[i];
        if (h->nlen != 12 || memcmp(h->name, "x-request-id", 12) != 0)
            continue;
        size_t k = 0;
        while (k < h->vlen && k < 65) {
            char ch = h->value[k];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                  || ch == '.' || ch == '_' || ch == ':' || ch == '-'))
                break;
            k++;
        }
        if (k == h->vlen && k >= 1 && k <= 64) {
            memcpy(c->reqid, h->value, k);
            c->reqidlen = k;
        }
        break;
    }
    if (c->reqidlen == 0)
        c->reqidlen = (size_t)snprintf(c->reqid, sizeof c->reqid, "%s%08lx", w->reqid_prefix,
                                       ++w->reqid_seq & 0xffffffffUL);
    r->request_id = c->reqid;
    r->ridlen = c->reqidlen;
}

static int path_is(const http_request *r, const char *p)
{
    size_t n = strlen(p);
    return r->plen == n && memcmp(r->path, p, n) == 0;
}

/* With --metrics-listen, /metrics is served there only, and that address
 * serves nothing else but /healthz and /ready (a 404 from the host). */
static int listener_serves(const conn *c)
{
    const http_request *r = &c->rq.req;
    if (c->w->opts->metrics_port < 0)
        return 1;
    if (c->metrics_only)
        return path_is(r, "/metrics") || path_is(r, "/healthz") || path_is(r, "/ready");
    return !path_is(r, "/metrics");
}

/* Read the header block from in: 1 when it is in and the body may follow,
 * 0 when more input is needed or the connection was answered (or freed). */
static int process_head(conn *c, struct evbuffer *in)
{
    if (evbuffer_get_length(in) == 0)
        return 0;
    if (c->start_ms < 0 && !c->w->opts->quiet)
        c->start_ms = log_now_ms();
    int r = request_read_head(&c->rq, c->w->opts, in);
    if (r < 0) {
        respond_plain(c, -r);
        return 0;
    }
    if (r == 0)
        return 0;
    /* The route's body limit, before any of the body is read or a 100
     * Continue invites it: a GET route takes none. */
    if (c->rq.chunked || c->rq.content_length > 0) {
        c->rq.max_body = c->w->calls.body_limit(c->w, &c->rq.req, c->rq.max_body);
        if ((r = request_check_length(&c->rq)) != 0) {
            respond_plain(c, r);
            return 0;
        }
    }
    if (c->rq.expect_continue && (c->rq.chunked || c->rq.content_length > 0) && c->rq.minor == 1
        && (evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0
            || flush(c) < 0)) {
        conn_free(c);
        return 0;
    }
    return 1;
}

/* Advance the connection's state machine on new input. */
static void advance(conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->rq.head == NULL && !process_head(c, in))
        return;
    int r = request_read_body(&c->rq, in);
    if (r < 0) {
        respond_plain(c, -r);
        return;
    }
    if (r == 0)
        return;
    set_request_id(c);
    if (!listener_serves(c)) {
        respond_plain(c, 404);
        return;
    }
    c->state = C_HANDLE;
    event_del(c->deadline);
    bufferevent_disable(c->bev, EV_READ);
    c->rq.req.remote = c->remote;
    c->rq.req.remote_port = c->remote_port;
    c->w->calls.request(c->w, c, &c->rq.req);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    if (c->state == C_LINGER) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    advance(c);
}

/* The response is out: close, or wait for the next request.  Called from
 * conn_respond (deferred: a pipelined request already buffered is read
 * from the loop, never by recursion) or from on_write. */
static void response_sent(conn *c, int deferred)
{
    if (!c->rq.keep_alive || c->w->stopping) {
        linger(c);
        return;
    }
    request_reset(&c->rq);
    c->state = C_READ;
    c->start_ms = -1;
    arm_deadline(c);
    bufferevent_enable(c->bev, EV_READ);
    if (!deferred)
        advance(c);
    else if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

/* Output drained (EV_WRITE is on only while flush left something). */
static void on_write(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    bufferevent_disable(bev, EV_WRITE);
    if (c->state == C_WRITE)
        response_sent(c, 0);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    conn *c = arg;
    if (c->state == C_HANDLE)
        c->dead = 1;        /* the handler's response will free it */
    else
        conn_free(c);
}

/* Over the connection limit: a best-effort 503 and close, without a conn.
 * What the client already sent is read first: closing with unread input
 * would reset the connection and could destroy the 503. */
static void refuse_busy(evutil_socket_t fd)
{
    char discard[4096];
    ssize_t got = recv(fd, discard, sizeof discard, MSG_DONTWAIT);
    (void)got;
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                               "Content-Type: text/plain\r\nContent-Length: 24\r\n\r\n"
                               "503 Service Unavailable\n";
    ssize_t ignored = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    close(fd);
}

/* A new connection for fd (closed on failure), or NULL. */
static conn *conn_new(worker *w, evutil_socket_t fd)
{
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->w = w;
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->deadline = evtimer_new(w->base, on_deadline, c);
    c->rq.body = evbuffer_new();
    if (c->bev != NULL && c->deadline != NULL && c->rq.body != NULL)
        return c;
    if (c->bev)
        bufferevent_free(c->bev);
    else
        close(fd);
    if (c->deadline)
        event_free(c->deadline);
    if (c->rq.body)
        evbuffer_free(c->rq.body);
    free(c);
    return NULL;
}

static void set_remote(conn *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, c->remote, sizeof c->remote);
        c->remote_port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, c->remote, sizeof c->remote);
        c->remote_port = ntohs(in6->sin6_port);
    }
}

static void accept_conn(worker *w, evutil_socket_t fd, struct sockaddr *sa, int metrics_only)
{
    if (w->stopping) {
        close(fd);
        return;
    }
    if (w->nconns >= w->opts->max_connections) {
        refuse_busy(fd);
        return;
    }
    conn *c = conn_new(w, fd);
    if (c == NULL)
        return;
    c->metrics_only = metrics_only;
    set_remote(c, sa);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    request_reset(&c->rq);
    c->state = C_READ;
    c->start_ms = -1;
    int one = 1;                /* each response leaves in one write: no Nagle delay */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_set_timeouts(c->bev, NULL, w->read_tv);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_disable(c->bev, EV_WRITE);    /* flush writes; EV_WRITE only for the rest */
    bufferevent_enable(c->bev, EV_READ);
    arm_deadline(c);
}

void conn_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                 int socklen, void *arg)
{
    (void)l;
    (void)socklen;
    accept_conn(arg, fd, sa, 0);
}

void conn_accept_metrics(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int socklen, void *arg)
{
    (void)l;
    (void)socklen;
    accept_conn(arg, fd, sa, 1);
}

/* On shutdown: close connections that wait for a request with nothing read. */
void conn_close_idle(worker *w)
{
    conn *c = w->conns;
    while (c != NULL) {
        conn *next = c->next;
        if (c->state == C_READ && c->rq.head == NULL
            && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
            conn_free(c);
        c = next;
    }
}

/* After the loop ended: abort handlers and free every connection. */
void conn_free_all(worker *w)
{
    w->stopping = 0;            /* no loopexit from conn_free now */
    while (w->conns != NULL) {
        conn *c = w->conns;
        c->state = C_READ;
        conn_free(c);
    }
}
