/*
 * http.h — the HTTP client's pieces that the host's non-blocking variant
 * (host/upstream.c) shares with the synchronous `core.http_request`.
 *
 * A transfer is a userdata (metatable `stripe_connect.http.transfer`) that
 * owns the request header list and the response buffers; curl callbacks only
 * append bytes to those buffers and never call into Lua.  The caller owns
 * the CURL easy handle: it prepares it, runs it (curl_easy_perform or a multi
 * handle) and asks for the result.  The userdata must stay anchored until the
 * easy handle has finished or been removed from its multi handle.
 */
#ifndef SC_HTTP_H
#define SC_HTTP_H

#include <curl/curl.h>
#include "core.h"

typedef struct sc_http_xfer sc_http_xfer;

/* Validate the options table at index `opts` (raising on misuse: unknown
 * keys, wrong types, CR/LF in headers) and configure `easy` for it; `easy`
 * is curl_easy_reset first.  Stack: [-0, +1] (the transfer userdata).
 * Returns NULL (after pushing the transfer) if libcurl refused an option;
 * the result is then pushed by sc_http_push_result with that code. */
sc_http_xfer *sc_http_prepare(lua_State *L, int opts, CURL *easy);

/* CURLcode recorded by sc_http_prepare when an option was refused, else CURLE_OK. */
CURLcode sc_http_setup_code(const sc_http_xfer *x);

/* Push the outcome of a finished transfer onto L: either the response table
 * (returns 1) or nil, message, code (returns 3), then free the transfer's
 * buffers.  Never raises except on memory errors.  Stack: [-0, +1|3]. */
int sc_http_push_result(lua_State *L, sc_http_xfer *x, CURL *easy, CURLcode rc);

/* The synchronous `core.http_request(opts)` and `core.sleep(seconds)`; the
 * host's coroutine-aware versions fall back to these outside a request. */
int sc_http_request_sync(lua_State *L);
int sc_sleep_sync(lua_State *L);

/* Seconds in the argument at `idx` (a non-negative number), raising otherwise. */
double sc_check_seconds(lua_State *L, int idx);

#endif /* SC_HTTP_H */
