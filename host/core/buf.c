/*
 * buf.c — the core's one growable byte buffer (sc_buf, core.h): doubling
 * capacity, always room for a terminating NUL.  The HTTP client's response
 * body and header block (http.c) and form_encode's output and key path
 * (codec.c) are sc_bufs.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

char *sc_buf_reserve(sc_buf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + extra + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return NULL;
        b->data = d;
        b->cap = cap;
    }
    return b->data + b->len;
}

int sc_buf_add(sc_buf *b, const char *p, size_t n)
{
    char *end = sc_buf_reserve(b, n);
    if (end == NULL)
        return -1;
    memcpy(end, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void sc_buf_free(sc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
