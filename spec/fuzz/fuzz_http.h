/*
 * fuzz_http.h — the shared part of the request parser targets: a parser
 * and an input buffer as conn.c sets them up for a connection.
 */
#ifndef FUZZ_HTTP_H
#define FUZZ_HTTP_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

typedef struct fuzz_conn {
    serve_opts o;
    request_parse rq;
    struct evbuffer *in;
} fuzz_conn;

static void fuzz_conn_open(fuzz_conn *fc, size_t max_header, size_t max_body, int max_headers)
{
    memset(fc, 0, sizeof *fc);
    fc->o.max_header_size = max_header;
    fc->o.max_body_size = max_body;
    fc->o.max_headers = max_headers;
    fc->rq.body = evbuffer_new();
    fc->in = evbuffer_new();
    CHECK(fc->rq.body != NULL && fc->in != NULL);
    request_reset(&fc->rq);
}

static void fuzz_conn_close(fuzz_conn *fc)
{
    request_free(&fc->rq);
    evbuffer_free(fc->rq.body);
    evbuffer_free(fc->in);
}

#endif /* FUZZ_HTTP_H */
