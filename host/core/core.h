/*
 * core.h — internal interface between the files of stripe_connect.core.
 *
 * Each area (crypto, codec, http, webhook, …) is one .c file in host/core/
 * exposing one `void sc_open_<area>(lua_State *L)` that adds its functions to
 * the module table on top of the stack.  core.c calls them all from
 * luaopen_stripe_connect_core.  No area keeps settings in C globals; the
 * process-wide states are metrics.c's registry and ratelimit.c's buckets,
 * shared by the host's workers on purpose.
 */
#ifndef SC_CORE_H
#define SC_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "../compat.h"

#define SC_VERSION "0.1.0"

/* Stack: [-0, +0]; adds the area's functions to the table at the top. */
void sc_open_crypto(lua_State *L);
void sc_open_codec(lua_State *L);
void sc_open_parse(lua_State *L);
void sc_open_http(lua_State *L);
void sc_open_webhook(lua_State *L);
void sc_open_sqlite(lua_State *L);
void sc_open_pg(lua_State *L);
void sc_open_metrics(lua_State *L);
void sc_open_ratelimit(lua_State *L);
void sc_open_redact(lua_State *L);

/* Constant-time comparison of two byte strings (length leaks, content does not). */
int sc_ct_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen);

/* HMAC-SHA256 of msg under key into out[32]; 0 on success, -1 on failure. */
int sc_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                   unsigned char out[32]);

/* The value of one hex digit (either case), or -1 (crypto.c). */
int sc_hex_digit(unsigned char c);

/* Lowercase hex of n bytes into out (2n chars, no NUL). */
void sc_hex_encode(const unsigned char *in, size_t n, char *out);

/* Length of s once percent-encoded (all but ALPHA DIGIT -._~ become %XX). */
size_t sc_url_encoded_len(const char *s, size_t n);

/* Percent-encodes s into out (sc_url_encoded_len(s, n) bytes, uppercase hex, no NUL). */
void sc_url_encode(const char *s, size_t n, char *out);

/* Percent-decodes s into out (at most n bytes; '+' becomes ' ' when
 * plus_as_space).  0 and *outlen on success; -1 and *errpos (0-based offset
 * of the '%') on a malformed escape such as "%zz" or a truncated "%4". */
int sc_percent_decode(const char *s, size_t n, int plus_as_space, char *out,
                      size_t *outlen, size_t *errpos);

/* Is c a token character (RFC 9110 tchar: VCHAR but the delimiters)?  The
 * one copy of the check: the host's request parser, its response headers
 * and http_request's header names and methods use it (http.c). */
int sc_is_tchar(unsigned char c);

/* Is s[0..n) a token (non-empty, tchar only)? */
int sc_is_token(const char *s, size_t n);

/* Finds the first secret (redact.c's prefixes) at or after s[from]: 1 and
 * s[*start..*end) its part after the prefix, or 0. */
int sc_next_secret(const char *s, size_t n, size_t from, size_t *start, size_t *end);

/* s[0..n) with each secret's part after its prefix replaced by "[redacted]",
 * into out (cut to cap - 1 bytes, NUL-terminated); answers the length. */
size_t sc_redact(const char *s, size_t n, char *out, size_t cap);

/* The table t[key] for the key on top of L, made (and stored) when missing;
 * t is an absolute index.  Stack: [-0, +1] (core.c). */
void sc_subtable(lua_State *L, int t);

/* FNV-1a's offset basis, and the hash of s[0..n) going on from h (start
 * from SC_FNV_BASIS, or a value mixed into it) (core.c). */
#define SC_FNV_BASIS 2166136261u
uint32_t sc_fnv1a(uint32_t h, const char *s, size_t n);

/* Seconds (a float) on CLOCK_MONOTONIC: never goes back (core.c). */
double sc_monotonic(void);

#endif /* SC_CORE_H */
