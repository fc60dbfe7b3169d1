/*
 * The chunked body decoder (host/request.c) behind a fixed header block,
 * and the chunk-size line grammar on its own.  Promises checked: a
 * chunk-size line that parses holds no CR, LF or NUL and starts with a hex
 * digit, and its size is what its leading hex digits say; a complete body
 * is the concatenation of its chunks (checked against a reference decoder
 * that trusts the chunk-size lines the parser accepted); the limit holds.
 */
#include "fuzz_http.h"

static int hexval(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
}

/* Reference: the body of a chunked stream whose lines all end in CRLF and
 * whose size lines the parser accepted; -1 when it is not complete. */
static long ref_decode(const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
    size_t i = 0, o = 0;
    for (;;) {
        const uint8_t *eol = NULL;
        for (size_t j = i; j + 1 < n; j++)
            if (p[j] == '\r' && p[j + 1] == '\n') { eol = p + j; break; }
        if (eol == NULL)
            return -1;
        unsigned long long sz;
        if (request_parse_chunk_size((const char *)p + i, (size_t)(eol - p) - i, &sz) != 0)
            return -1;
        i = (size_t)(eol - p) + 2;
        if (sz == 0)
            return (long)o;           /* trailers: not part of the body */
        if (sz > n - i || o + sz > cap)
            return -1;
        memcpy(out + o, p + i, sz);
        o += sz;
        i += sz;
        if (i + 2 > n || p[i] != '\r' || p[i + 1] != '\n')
            return -1;
        i += 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the grammar on the whole input as one line */
    unsigned long long sz;
    if (request_parse_chunk_size((const char *)data, size, &sz) == 0) {
        CHECK(size > 0 && hexval(data[0]) >= 0);
        unsigned long long v = 0;
        for (size_t i = 0; i < size && hexval(data[i]) >= 0; i++)
            v = v * 16 + (unsigned long long)hexval(data[i]);
        CHECK(v == sz);
        for (size_t i = 0; i < size; i++)
            CHECK(data[i] != '\r' && data[i] != '\n' && data[i] != '\0');
    }
    /* the decoder on the input as a body */
    static const char head[] = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    fuzz_conn fc;
    fuzz_conn_open(&fc, 1024, 8192, 8);
    request_parse *rq = &fc.rq;
    evbuffer_add(fc.in, head, sizeof head - 1);
    CHECK(request_read_head(rq, &fc.o, fc.in) == 1 && rq->chunked);
    evbuffer_add(fc.in, data, size);
    int r = request_read_body(rq, fc.in);
    if (r == 1) {
        static uint8_t ref[8192];
        long n = ref_decode(data, size, ref, sizeof ref);
        CHECK(n >= 0 && (size_t)n == rq->req.blen && memcmp(ref, rq->req.body, (size_t)n) == 0);
    } else if (r < 0) {
        CHECK(-r == 400 || -r == 413 || -r == 431);
    }
    fuzz_conn_close(&fc);
    return 0;
}
