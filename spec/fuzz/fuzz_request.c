/*
 * The request parser (host/request.c) on a connection's byte stream:
 * request line, header block, framing, Content-Length and chunked bodies,
 * pipelined requests.  The first input byte sets the size of the pieces the
 * stream arrives in (1-64 bytes), so every split of a line is tried; the
 * second picks the route's body limit (0 or --max-body-size), as conn.c
 * asks the app.  Promises checked: a parsed request has a token method, a
 * target starting with '/' (or "*"), header names that are lower-case
 * tokens and values without CR, LF or NUL; a body within its limit; an
 * error status is one the server answers; after an error or Connection:
 * close nothing more is parsed.
 */
#include "fuzz_http.h"

static void check_request(const request_parse *rq)
{
    const http_request *r = &rq->req;
    CHECK(r->mlen > 0);
    for (size_t i = 0; i < r->mlen; i++)
        CHECK(sc_is_tchar((unsigned char)r->method[i]));
    CHECK(r->plen > 0 && (r->path[0] == '/' || (r->plen == 1 && r->path[0] == '*')));
    for (size_t i = 0; i < r->plen; i++)
        CHECK((unsigned char)r->path[i] > 32 && (unsigned char)r->path[i] < 127 && r->path[i] != '?');
    for (int h = 0; h < r->nheaders; h++) {
        const http_header *x = &r->headers[h];
        CHECK(x->nlen > 0);
        for (size_t i = 0; i < x->nlen; i++)
            CHECK(sc_is_tchar((unsigned char)x->name[i]) && !(x->name[i] >= 'A' && x->name[i] <= 'Z'));
        for (size_t i = 0; i < x->vlen; i++)
            CHECK(x->value[i] != '\r' && x->value[i] != '\n' && x->value[i] != '\0');
    }
}

static int known_status(int s)
{
    return s == 400 || s == 413 || s == 417 || s == 431 || s == 500 || s == 501 || s == 505;
}

/* A -status from the parser: one the server answers; the connection is done. */
static int failed(int r)
{
    CHECK(known_status(-r));
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = (size_t)(data[0] % 64) + 1;
    int no_body_route = data[1] & 1;
    data += 2;
    size -= 2;
    fuzz_conn fc;
    fuzz_conn_open(&fc, 2048, 4096, 16);
    request_parse *rq = &fc.rq;
    struct evbuffer *in = fc.in;
    size_t off = 0;
    int done = 0;
    while (!done) {
        if (off < size) {
            size_t n = size - off < step ? size - off : step;
            evbuffer_add(in, data + off, n);
            off += n;
        }
        int progressed = 1;
        while (progressed && !done) {
            progressed = 0;
            if (rq->head == NULL) {
                int r = request_read_head(rq, &fc.o, in);
                if (r < 0) {
                    done = failed(r);
                    break;
                }
                if (r == 0)
                    break;
                check_request(rq);
                if (rq->chunked || rq->content_length > 0) {
                    if (no_body_route)
                        rq->max_body = 0;
                    int s = request_check_length(rq);
                    if (s != 0) {
                        CHECK(s == 413);
                        done = 1;
                        break;
                    }
                }
            }
            int r = request_read_body(rq, in);
            if (r < 0) {
                done = failed(r);
                break;
            }
            if (r == 0)
                break;
            check_request(rq);
            CHECK(rq->req.blen <= rq->max_body);
            if (rq->content_length >= 0)
                CHECK(rq->req.blen == (size_t)rq->content_length);
            if (!rq->keep_alive) {
                done = 1;
                break;
            }
            request_reset(rq);
            progressed = 1;
        }
        if (off >= size && !done)
            break;                   /* the stream ended mid-request */
    }
    fuzz_conn_close(&fc);
    return 0;
}
