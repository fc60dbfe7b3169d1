/*
 * request.c — parsing one HTTP/1.1 request from a connection's input
 * buffer: the request line and header block (size and count limits), the
 * framing headers (Content-Length, chunked, Connection, Host, Expect), and
 * the body (Content-Length or chunked, size limit).  No I/O, no Lua: the
 * connection (conn.c) feeds the input buffer and answers the status codes
 * these functions return.
 *
 * Strict where leniency invites request smuggling: Content-Length with
 * Transfer-Encoding, conflicting Content-Lengths, obsolete line folding,
 * whitespace before the colon, bare CR or LF in a value all answer 400; a
 * transfer coding other than chunked 501; HTTP/1.1 without exactly one Host 400.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "serve.h"

enum { CHUNK_SIZE = -1, CHUNK_CRLF = -2, CHUNK_TRAILER = -3 };
enum { KEEP_HEAD = 4096, KEEP_HEADERS = 32 };  /* kept across requests up to these */

/* Free what request_reset keeps (the connection is closing). */
void request_free(request_parse *rq)
{
    request_reset(rq);
    free(rq->head_buf);
    free(rq->headers);
    rq->head_buf = NULL;
    rq->headers = NULL;
    rq->head_cap = 0;
    rq->headers_cap = 0;
}

/* Forget the current request (keeps the connection, and the head and
 * header arrays for the next request when they are small). */
void request_reset(request_parse *rq)
{
    if (rq->head_cap > KEEP_HEAD) {
        free(rq->head_buf);
        rq->head_buf = NULL;
        rq->head_cap = 0;
    }
    if (rq->headers_cap > KEEP_HEADERS) {
        free(rq->headers);
        rq->headers = NULL;
        rq->headers_cap = 0;
    }
    free(rq->flat_body);
    rq->head = NULL;
    rq->flat_body = NULL;
    if (rq->body)
        evbuffer_drain(rq->body, evbuffer_get_length(rq->body));
    memset(&rq->req, 0, sizeof rq->req);
    rq->content_length = -1;
    rq->chunked = rq->expect_continue = rq->is_head = 0;
    rq->minor = 1;
    rq->chunk_left = CHUNK_SIZE;
    rq->trailer_bytes = 0;
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
static int framing_header(request_parse *rq, const http_header *h, int *hosts)
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
        if (rq->content_length >= 0 && rq->content_length != v)
            return 400;
        rq->content_length = v;
    } else if (h->nlen == 17 && strncasecmp(h->name, "transfer-encoding", 17) == 0) {
        if (h->vlen != 7 || strncasecmp(h->value, "chunked", 7) != 0 || rq->chunked)
            return 501;
        rq->chunked = 1;
    } else if (h->nlen == 10 && strncasecmp(h->name, "connection", 10) == 0) {
        if (has_token(h->value, h->vlen, "close"))
            rq->keep_alive = 0;
        else if (has_token(h->value, h->vlen, "keep-alive"))
            rq->keep_alive = 1;
    } else if (h->nlen == 4 && strncasecmp(h->name, "host", 4) == 0) {
        (*hosts)++;
    } else if (h->nlen == 6 && strncasecmp(h->name, "expect", 6) == 0) {
        if (h->vlen != 12 || strncasecmp(h->value, "100-continue", 12) != 0)
            return 417;
        rq->expect_continue = 1;
    }
    return 0;
}

/* The request line "METHOD SP TARGET SP HTTP/1.x" up to eol.  0 or an error status. */
static int parse_request_line(request_parse *rq, char *p, char *eol)
{
    char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1)
        return 400;
    for (char *q = p; q < sp1; q++)
        if (!sc_is_tchar((unsigned char)*q))
            return 400;
    for (char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char)*q <= 32 || (unsigned char)*q >= 127)
            return 400;
    size_t vlen = (size_t)(eol - sp2 - 1);
    if (vlen != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return vlen == 8 && strncmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 : 400;
    rq->minor = sp2[8] - '0';
    if (rq->minor != 0 && rq->minor != 1)
        return 505;
    rq->keep_alive = rq->minor == 1;
    rq->req.method = p;
    rq->req.mlen = (size_t)(sp1 - p);
    rq->is_head = rq->req.mlen == 4 && memcmp(p, "HEAD", 4) == 0;
    char *target = sp1 + 1;
    if (*target != '/' && !(sp2 - target == 1 && *target == '*'))
        return 400;
    char *qm = memchr(target, '?', (size_t)(sp2 - target));
    rq->req.path = target;
    rq->req.plen = (size_t)((qm ? qm : sp2) - target);
    rq->req.query = qm ? qm + 1 : "";
    rq->req.qlen = qm ? (size_t)(sp2 - qm - 1) : 0;
    return 0;
}

/* One "Name: value" line [p, eol) into h, the name lower-cased in place.
 * 0 or an error status. */
static int parse_header_line(char *p, char *eol, http_header *h)
{
    if (*p == ' ' || *p == '\t')
        return 400;                              /* obsolete line folding */
    char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon == NULL || colon == p)
        return 400;
    for (char *q = p; q < colon; q++) {
        if (!sc_is_tchar((unsigned char)*q))
            return 400;
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q + 32);               /* names reach Lua lower-cased */
    }
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

/* Parse rq->head (NUL-terminated, ends with CRLFCRLF) into rq->req and the
 * framing fields.  0 or an error status. */
static int parse_head(request_parse *rq, const serve_opts *o)
{
    char *p = rq->head, *eol = strstr(p, "\r\n");
    int err = parse_request_line(rq, p, eol);
    if (err)
        return err;
    int hosts = 0;
    rq->req.headers = rq->headers;
    for (p = eol + 2; strncmp(p, "\r\n", 2) != 0; p = eol + 2) {
        eol = strstr(p, "\r\n");
        if (rq->req.nheaders == o->max_headers)
            return 431;
        if (rq->req.nheaders == rq->headers_cap) {
            int cap = rq->headers_cap ? rq->headers_cap * 2 : 16;
            http_header *h = realloc(rq->headers, sizeof *h * (size_t)cap);
            if (h == NULL)
                return 500;
            rq->req.headers = rq->headers = h;
            rq->headers_cap = cap;
        }
        http_header *h = &rq->headers[rq->req.nheaders++];
        if ((err = parse_header_line(p, eol, h)) != 0 || (err = framing_header(rq, h, &hosts)) != 0)
            return err;
    }
    if ((rq->minor == 1 && hosts != 1) || hosts > 1)
        return 400;
    if (rq->chunked && (rq->content_length >= 0 || rq->minor == 0))
        return 400;                 /* RFC 9112 §6.1: chunked on 1.0 is faulty framing */
    rq->max_body = o->max_body_size;
    rq->max_trailer = o->max_header_size;
    return request_check_length(rq);
}

/* Content-Length over rq->max_body: 413 (before any of the body is read).
 * 0 or an error status. */
int request_check_length(const request_parse *rq)
{
    return rq->content_length > (long long)rq->max_body ? 413 : 0;
}

/* Read the header block if complete.  1: parsed, 0: need more, <0: -status. */
int request_read_head(request_parse *rq, const serve_opts *o, struct evbuffer *in)
{
    size_t max = o->max_header_size;
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
    if (n + 1 > rq->head_cap) {
        char *p = realloc(rq->head_buf, n + 1);
        if (p == NULL)
            return -500;
        rq->head_buf = p;
        rq->head_cap = n + 1;
    }
    rq->head = rq->head_buf;
    evbuffer_remove(in, rq->head, n);
    rq->head[n] = '\0';
    if (n == 4)
        return -400;
    if (memchr(rq->head, '\0', n) != NULL)
        return -400;
    int err = parse_head(rq, o);
    return err ? -err : 1;
}

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The quoted-string that starts at line[*pos] (its opening quote): *pos
 * past its closing quote, 0; or -1 (unterminated, or a control character).
 * qdtext and quoted-pair take HTAB SP VCHAR obs-text. */
static int skip_quoted(const char *line, size_t n, size_t *pos)
{
    for (size_t i = *pos + 1; i < n; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch == '"') {
            *pos = i + 1;
            return 0;
        }
        if (ch == '\\' && ++i == n)                 /* quoted-pair */
            return -1;
        ch = (unsigned char)line[i];
        if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
            return -1;
    }
    return -1;
}

/* A chunk-size line [line, line + n) without its CRLF (RFC 9112 §7.1):
 *   chunk-size [ chunk-ext ]
 *   chunk-size = 1*HEXDIG (at most 16 here)
 *   chunk-ext  = *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )
 * Extensions are checked, then ignored.  Anything else (a bare CR or LF, a
 * NUL, trailing whitespace, "0x", "+", "-", a leading space) is refused:
 * another parser in front may end the line or read the size differently.
 * 0 or -1. */
int request_parse_chunk_size(const char *line, size_t n, unsigned long long *size)
{
    unsigned long long v = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char ch = line[i];
        int d = sc_hex_digit((unsigned char)ch);
        if (d < 0)
            break;
        if (i == 16)
            return -1;
        v = v * 16 + (unsigned long long)d;
    }
    if (i == 0)
        return -1;
    while (i < n) {                                  /* one chunk-ext per round */
        while (i < n && is_ws(line[i]))
            i++;
        if (i == n || line[i++] != ';')
            return -1;
        while (i < n && is_ws(line[i]))
            i++;
        size_t start = i;
        while (i < n && sc_is_tchar((unsigned char)line[i]))
            i++;
        if (i == start)
            return -1;                               /* chunk-ext-name = token */
        size_t j = i;
        while (j < n && is_ws(line[j]))
            j++;
        if (j == n || line[j] != '=')
            continue;                                /* no value; BWS before ';' */
        for (i = j + 1; i < n && is_ws(line[i]); i++)
            ;
        if (i < n && line[i] == '"') {               /* quoted-string */
            if (skip_quoted(line, n, &i) != 0)
                return -1;
        } else {
            start = i;
            while (i < n && sc_is_tchar((unsigned char)line[i]))
                i++;
            if (i == start)
                return -1;
        }
    }
    *size = v;
    return 0;
}

/* One trailer field line (RFC 9112 §7.1.2): checked like a header field
 * line, then discarded.  0 or an error status. */
static int trailer_line(char *line, size_t n)
{
    http_header h;
    if (memchr(line, '\0', n) != NULL)
        return 400;
    return parse_header_line(line, line + n, &h);
}

/* One chunk-size or trailer line.  1: the body is complete; 0: go on, or
 * with *more set: need more input; <0: -status. */
static int chunk_line(request_parse *rq, struct evbuffer *in, int *more)
{
    size_t n;
    char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
    if (line == NULL) {
        *more = 1;
        return evbuffer_get_length(in) > 4096 ? -400 : 0;
    }
    if (rq->chunk_left == CHUNK_TRAILER) {
        rq->trailer_bytes += n + 2;
        int err = n == 0 ? 0 : trailer_line(line, n);
        free(line);
        if (err)
            return -err;
        if (rq->trailer_bytes > rq->max_trailer)
            return -431;
        return n == 0 ? 1 : 0;
    }
    unsigned long long size;
    int bad = request_parse_chunk_size(line, n, &size) != 0;
    free(line);
    if (bad)
        return -400;
    if (size > rq->max_body || evbuffer_get_length(rq->body) + size > rq->max_body)
        return -413;
    rq->chunk_left = size == 0 ? CHUNK_TRAILER : (long long)size;
    return 0;
}

/* Decode chunked body bytes from `in`.  1: complete, 0: need more, <0: -status. */
static int read_chunked(request_parse *rq, struct evbuffer *in)
{
    for (;;) {
        if (rq->chunk_left == CHUNK_SIZE || rq->chunk_left == CHUNK_TRAILER) {
            int more = 0, r = chunk_line(rq, in, &more);
            if (r != 0 || more)
                return r;
        } else if (rq->chunk_left == CHUNK_CRLF) {
            unsigned char crlf[2];
            if (evbuffer_get_length(in) < 2)
                return 0;
            evbuffer_remove(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n')
                return -400;
            rq->chunk_left = CHUNK_SIZE;
        } else {
            size_t avail = evbuffer_get_length(in);
            if (avail == 0)
                return 0;
            size_t take = avail < (size_t)rq->chunk_left ? avail : (size_t)rq->chunk_left;
            evbuffer_remove_buffer(in, rq->body, take);
            rq->chunk_left -= (long long)take;
            if (rq->chunk_left == 0)
                rq->chunk_left = CHUNK_CRLF;
        }
    }
}

/* Read the body if complete into rq->req.body.  1, 0 or -status. */
int request_read_body(request_parse *rq, struct evbuffer *in)
{
    if (rq->chunked) {
        int r = read_chunked(rq, in);
        if (r != 1)
            return r;
    } else if (rq->content_length > 0) {
        if (evbuffer_get_length(in) < (size_t)rq->content_length)
            return 0;
        evbuffer_remove_buffer(in, rq->body, (size_t)rq->content_length);
    }
    size_t n = evbuffer_get_length(rq->body);
    rq->req.body = "";
    rq->req.blen = 0;
    if (n == 0)
        return 1;
    rq->flat_body = malloc(n + 1);
    if (rq->flat_body == NULL)
        return -500;
    evbuffer_remove(rq->body, rq->flat_body, n);
    rq->req.body = rq->flat_body;
    rq->req.blen = n;
    return 1;
}
