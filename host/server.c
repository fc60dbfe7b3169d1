/*
 * server.c — HTTP/1.1 server connections on libevent bufferevents.
 *
 * One request at a time per connection (pipelined requests wait in the
 * input buffer), keep-alive by default on 1.1 and on request on 1.0.
 * Limits, each from serve_opts: header block size and header count (431),
 * body size (413, checked against Content-Length before reading), a deadline
 * for receiving a whole request which is also the idle keep-alive timeout
 * (the connection is dropped), connections per worker (503 and close).
 * Malformed requests answer 400 and close; Transfer-Encoding other than
 * chunked 501; Content-Length together with Transfer-Encoding 400 (no
 * smuggling).  Reading is paused while the handler runs, so a client that
 * disappears is noticed when its response is written.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "worker.h"

enum { C_READ, C_HANDLE, C_WRITE, C_LINGER };
#define LINGER_SECONDS 2.0
enum { CHUNK_SIZE = -1, CHUNK_CRLF = -2, CHUNK_TRAILER = -3, CHUNK_DONE = -4 };

struct conn {
    worker *w;
    conn *prev, *next;
    struct bufferevent *bev;
    struct event *deadline;
    char remote[INET6_ADDRSTRLEN];
    int remote_port;
    int minor;                  /* HTTP/1.minor of the current request */
    int state, keep_alive, dead, is_head;
    char *head;                 /* the request's header block, owned */
    http_header *headers;
    http_request req;
    long long content_length;   /* -1: none */
    int chunked, expect_continue;
    long long chunk_left;
    size_t trailer_bytes;
    struct evbuffer *body;
    char *flat_body;
    double start_ms;
};

static void process(conn *c);

const http_request *server_request(const conn *c)
{
    return &c->req;
}

/* A listening TCP socket on host:port with SO_REUSEPORT; -1 on failure
 * (errno set).  *bound_port receives the real port (for port 0). */
int server_listen_socket(const char *host, int port, int *bound_port)
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
        return -1;
    }
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

/* Forget the current request (keeps the connection). */
static void reset_request(conn *c)
{
    free(c->head);
    free(c->headers);
    free(c->flat_body);
    c->head = NULL;
    c->headers = NULL;
    c->flat_body = NULL;
    if (c->body)
        evbuffer_drain(c->body, evbuffer_get_length(c->body));
    memset(&c->req, 0, sizeof c->req);
    c->content_length = -1;
    c->chunked = c->expect_continue = c->is_head = 0;
    c->minor = 1;
    c->chunk_left = CHUNK_SIZE;
    c->trailer_bytes = 0;
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
    reset_request(c);
    if (c->body)
        evbuffer_free(c->body);
    event_free(c->deadline);
    bufferevent_free(c->bev);
    free(c);
    if (w->stopping && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

static void arm_deadline(conn *c)
{
    double t = c->w->opts->read_timeout;
    if (c->state == C_LINGER && t > LINGER_SECONDS)
        t = LINGER_SECONDS;
    struct timeval tv = { (time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6) };
    evtimer_add(c->deadline, &tv);
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

void server_respond(conn *c, int status, const char *head, size_t headlen,
                    const char *body, size_t bodylen)
{
    worker *w = c->w;
    const char *path = c->req.path ? c->req.path : "-";
    size_t plen = c->req.path ? c->req.plen : 1;
    log_access(w, c->req.method ? c->req.method : "-", path, plen, status,
               log_now_ms() - c->start_ms, bodylen);
    if (c->dead) {
        conn_free(c);
        return;
    }
    if (w->stopping)
        c->keep_alive = 0;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, reason(status), date);
    evbuffer_add(out, head, headlen);
    int no_body = status == 204 || status == 304 || status < 200;
    if (!no_body)
        evbuffer_add_printf(out, "Content-Length: %zu\r\n", bodylen);
    if (!c->keep_alive)
        evbuffer_add(out, "Connection: close\r\n", 19);
    else if (c->minor == 0)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    evbuffer_add(out, "\r\n", 2);
    if (!no_body && !c->is_head)
        evbuffer_add(out, body, bodylen);
    c->state = C_WRITE;
    bufferevent_enable(c->bev, EV_WRITE);
}

/* A response from the server itself (errors before or instead of the app). */
static void respond_plain(conn *c, int status)
{
    char body[128];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason(status));
    static const char head[] = "Content-Type: text/plain; charset=utf-8\r\n";
    c->keep_alive = 0;
    c->state = C_HANDLE;
    bufferevent_disable(c->bev, EV_READ);
    event_del(c->deadline);
    server_respond(c, status, head, sizeof head - 1, body, (size_t)n);
}

static int is_tchar(unsigned char ch)
{
    return ch > 32 && ch < 127 && strchr("\"(),/:;<=>?@[\\]{}", ch) == NULL;
}

static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, tok, tl) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ')
            && (i + tl == n || v[i + tl] == ',' || v[i + tl] == ' '))
            return 1;
    return 0;
}

/* Interpret the framing headers.  Returns 0 or an HTTP error status. */
static int framing_header(conn *c, const http_header *h, int *hosts)
{
    if (h->nlen == 14 && strncasecmp(h->name, "content-length", 14) == 0) {
        if (h->vlen == 0 || h->vlen > 18)
            return 400;
        long long v = 0;
        for (size_t i = 0; i < h->vlen; i++) {
            if (h->value[i] < '0' || h->value[i] > '9')
                return 400;
            v = v * 10 + (h->value[i] - '0');
        }
        if (c->content_length >= 0 && c->content_length != v)
            return 400;
        c->content_length = v;
    } else if (h->nlen == 17 && strncasecmp(h->name, "transfer-encoding", 17) == 0) {
        if (h->vlen != 7 || strncasecmp(h->value, "chunked", 7) != 0 || c->chunked)
            return 501;
        c->chunked = 1;
    } else if (h->nlen == 10 && strncasecmp(h->name, "connection", 10) == 0) {
        if (has_token(h->value, h->vlen, "close"))
            c->keep_alive = 0;
        else if (has_token(h->value, h->vlen, "keep-alive"))
            c->keep_alive = 1;
    } else if (h->nlen == 4 && strncasecmp(h->name, "host", 4) == 0) {
        (*hosts)++;
    } else if (h->nlen == 6 && strncasecmp(h->name, "expect", 6) == 0) {
        if (h->vlen != 12 || strncasecmp(h->value, "100-continue", 12) != 0)
            return 417;
        c->expect_continue = 1;
    }
    return 0;
}

/* The request line "METHOD SP TARGET SP HTTP/1.x" up to eol.  0 or an error status. */
static int parse_request_line(conn *c, char *p, char *eol)
{
    char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1)
        return 400;
    for (char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return 400;
    for (char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char)*q <= 32 || (unsigned char)*q >= 127)
            return 400;
    size_t vlen = (size_t)(eol - sp2 - 1);
    if (vlen != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return vlen == 8 && strncmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400;
    c->minor = sp2[8] - '0';
    if (c->minor != 0 && c->minor != 1)
        return 505;
    c->keep_alive = c->minor == 1;
    c->req.method = p;
    c->req.mlen = (size_t)(sp1 - p);
    c->is_head = c->req.mlen == 4 && memcmp(p, "HEAD", 4) == 0;
    char *target = sp1 + 1;
    if (*target != '/' && !(sp2 - target == 1 && *target == '*'))
        return 400;
    char *qm = memchr(target, '?', (size_t)(sp2 - target));
    c->req.path = target;
    c->req.plen = (size_t)((qm ? qm : sp2) - target);
    c->req.query = qm ? qm + 1 : "";
    c->req.qlen = qm ? (size_t)(sp2 - qm - 1) : 0;
    return 0;
}

/* One "Name: value" line [p, eol) into h.  0 or an error status. */
static int parse_header_line(char *p, char *eol, http_header *h)
{
    if (*p == ' ' || *p == '\t')
        return 400;                              /* obsolete line folding */
    char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon == NULL || colon == p)
        return 400;
    for (char *q = p; q < colon; q++)
        if (!is_tchar((unsigned char)*q))
            return 400;
    char *v = colon + 1, *ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    for (char *q = v; q < ve; q++)
        if (*q == '\r' || *q == '\n' || *q == '\0')
            return 400;
    h->name = p;
    h->nlen = (size_t)(colon - p);
    h->value = v;
    h->vlen = (size_t)(ve - v);
    return 0;
}

/* Parse c->head (NUL-terminated, ends with CRLFCRLF) into c->req and the
 * framing fields.  0 or an error status. */
static int parse_head(conn *c)
{
    char *p = c->head, *eol = strstr(p, "\r\n");
    int err = parse_request_line(c, p, eol);
    if (err)
        return err;
    int cap = 16, hosts = 0;
    c->headers = malloc(sizeof *c->headers * (size_t)cap);
    if (c->headers == NULL)
        return 500;
    c->req.headers = c->headers;
    for (p = eol + 2; strncmp(p, "\r\n", 2) != 0; p = eol + 2) {
        eol = strstr(p, "\r\n");
        if (c->req.nheaders == c->w->opts->max_headers)
            return 431;
        if (c->req.nheaders == cap) {
            cap *= 2;
            http_header *h = realloc(c->headers, sizeof *h * (size_t)cap);
            if (h == NULL)
                return 500;
            c->req.headers = c->headers = h;
        }
        http_header *h = &c->headers[c->req.nheaders++];
        if ((err = parse_header_line(p, eol, h)) != 0 || (err = framing_header(c, h, &hosts)) != 0)
            return err;
    }
    if ((c->minor == 1 && hosts != 1) || hosts > 1)
        return 400;
    if (c->chunked && c->content_length >= 0)
        return 400;
    if (c->content_length > (long long)c->w->opts->max_body_size)
        return 413;
    return 0;
}

/* Read the header block if complete.  1: parsed, 0: need more, <0: -status. */
static int read_head(conn *c, struct evbuffer *in)
{
    size_t max = c->w->opts->max_header_size;
    /* Tolerate stray CRLFs before a request (RFC 9112 §2.2). */
    unsigned char two[2];
    while (evbuffer_copyout(in, two, 2) == 2 && two[0] == '\r' && two[1] == '\n')
        evbuffer_drain(in, 2);
    struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (pos.pos < 0)
        return evbuffer_get_length(in) > max ? -431 : 0;
    size_t n = (size_t)pos.pos + 4;
    if (n > max)
        return -431;
    c->head = malloc(n + 1);
    if (c->head == NULL)
        return -500;
    evbuffer_remove(in, c->head, n);
    c->head[n] = '\0';
    if (n == 4)
        return -400;
    if (memchr(c->head, '\0', n) != NULL)
        return -400;
    int err = parse_head(c);
    return err ? -err : 1;
}

/* Decode chunked body bytes from `in`.  1: complete, 0: need more, <0: -status. */
static int read_chunked(conn *c, struct evbuffer *in)
{
    size_t max = c->w->opts->max_body_size;
    for (;;) {
        if (c->chunk_left == CHUNK_SIZE || c->chunk_left == CHUNK_TRAILER) {
            size_t n;
            char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
            if (line == NULL)
                return evbuffer_get_length(in) > 4096 ? -400 : 0;
            if (c->chunk_left == CHUNK_TRAILER) {
                free(line);
                c->trailer_bytes += n + 2;
                if (c->trailer_bytes > c->w->opts->max_header_size)
                    return -431;
                if (n == 0)
                    return 1;
                continue;
            }
            char *end;
            errno = 0;
            unsigned long long size = strtoull(line, &end, 16);
            int bad = end == line || errno != 0 || (*end != '\0' && *end != ';' && *end != ' ');
            free(line);
            if (bad)
                return -400;
            if (size > max || evbuffer_get_length(c->body) + size > max)
                return -413;
            c->chunk_left = size == 0 ? CHUNK_TRAILER : (long long)size;
        } else if (c->chunk_left == CHUNK_CRLF) {
            unsigned char crlf[2];
            if (evbuffer_get_length(in) < 2)
                return 0;
            evbuffer_remove(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n')
                return -400;
            c->chunk_left = CHUNK_SIZE;
        } else {
            size_t avail = evbuffer_get_length(in);
            if (avail == 0)
                return 0;
            size_t take = avail < (size_t)c->chunk_left ? avail : (size_t)c->chunk_left;
            evbuffer_remove_buffer(in, c->body, take);
            c->chunk_left -= (long long)take;
            if (c->chunk_left == 0)
                c->chunk_left = CHUNK_CRLF;
        }
    }
}

/* Read the body if complete into c->req.body.  1, 0 or -status. */
static int read_body(conn *c, struct evbuffer *in)
{
    if (c->chunked) {
        int r = read_chunked(c, in);
        if (r != 1)
            return r;
    } else if (c->content_length > 0) {
        if (evbuffer_get_length(in) < (size_t)c->content_length)
            return 0;
        evbuffer_remove_buffer(in, c->body, (size_t)c->content_length);
    }
    size_t n = evbuffer_get_length(c->body);
    c->flat_body = malloc(n + 1);
    if (c->flat_body == NULL)
        return -500;
    evbuffer_remove(c->body, c->flat_body, n);
    c->req.body = c->flat_body;
    c->req.blen = n;
    return 1;
}

/* Advance the connection's state machine on new input. */
static void process(conn *c)
{
    if (c->state != C_READ)
        return;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->head == NULL) {
        if (evbuffer_get_length(in) == 0)
            return;
        c->start_ms = log_now_ms();
        int r = read_head(c, in);
        if (r < 0) {
            respond_plain(c, -r);
            return;
        }
        if (r == 0)
            return;
        if (c->expect_continue && (c->chunked || c->content_length > 0) && c->minor == 1)
            bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    int r = read_body(c, in);
    if (r < 0) {
        respond_plain(c, -r);
        return;
    }
    if (r == 0)
        return;
    c->state = C_HANDLE;
    event_del(c->deadline);
    bufferevent_disable(c->bev, EV_READ);
    c->req.remote = c->remote;
    c->req.remote_port = c->remote_port;
    app_handle(c->w, c, &c->req);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    if (c->state == C_LINGER) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    process(c);
}

/* Output drained: the response is out; next request or close. */
static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn *c = arg;
    if (c->state != C_WRITE)
        return;
    if (!c->keep_alive || c->w->stopping) {
        linger(c);
        return;
    }
    reset_request(c);
    c->state = C_READ;
    arm_deadline(c);
    bufferevent_enable(c->bev, EV_READ);
    process(c);
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

void server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                   int socklen, void *arg)
{
    (void)l;
    (void)socklen;
    worker *w = arg;
    if (w->stopping) {
        close(fd);
        return;
    }
    if (w->nconns >= w->opts->max_connections) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                                   "Content-Type: text/plain\r\nContent-Length: 20\r\n\r\n"
                                   "503 Service Unavailable\n";
        ssize_t ignored = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
        close(fd);
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->w = w;
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->deadline = evtimer_new(w->base, on_deadline, c);
    c->body = evbuffer_new();
    if (c->bev == NULL || c->deadline == NULL || c->body == NULL) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            close(fd);
        if (c->deadline)
            event_free(c->deadline);
        if (c->body)
            evbuffer_free(c->body);
        free(c);
        return;
    }
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->remote, sizeof c->remote);
        c->remote_port = ntohs(((struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->remote, sizeof c->remote);
        c->remote_port = ntohs(((struct sockaddr_in6 *)sa)->sin6_port);
    }
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    reset_request(c);
    c->state = C_READ;
    double t = w->opts->read_timeout;
    struct timeval wtv = { (time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6) };
    bufferevent_set_timeouts(c->bev, NULL, &wtv);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
    arm_deadline(c);
}

/* On shutdown: close connections that wait for a request with nothing read. */
void server_close_idle(worker *w)
{
    conn *c = w->conns;
    while (c != NULL) {
        conn *next = c->next;
        if (c->state == C_READ && c->head == NULL
            && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
            conn_free(c);
        c = next;
    }
}

/* After the loop ended: abort handlers and free every connection. */
void server_free_all(worker *w)
{
    w->stopping = 0;            /* no loopexit from conn_free now */
    while (w->conns != NULL) {
        conn *c = w->conns;
        c->state = C_READ;
        conn_free(c);
    }
}
