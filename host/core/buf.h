/*
 * buf.h — the core's growable byte buffer (buf.c), shared by the HTTP
 * client's response buffers (http.c) and form_encode (codec.c).
 */
#ifndef SC_BUF_H
#define SC_BUF_H

#include <stddef.h>

/* A growable byte buffer (buf.c): capacity doubles, data stays
 * NUL-terminated once anything was reserved.  Zero-initialise it. */
typedef struct sc_buf {
    char *data;
    size_t len, cap;
} sc_buf;

/* Room for extra more bytes plus a NUL: the end of the data, or NULL when
 * out of memory (the buffer is unchanged). */
char *sc_buf_reserve(sc_buf *b, size_t extra);

/* Append n bytes; 0, or -1 when out of memory. */
int sc_buf_add(sc_buf *b, const char *p, size_t n);

void sc_buf_free(sc_buf *b);

#endif /* SC_BUF_H */
