/*
 * http.c — the core's HTTP client on libcurl, and `core.sleep`.
 *
 *   core.http_request{ method=, url=, headers=, body=, timeout=, connect_timeout=,
 *                      verify=, max_size=, ca_file=, fresh_connect= }
 *     -> { status=, headers={ lower-cased name = value, ["set-cookie"] = {…} }, body= }
 *     |  nil, message, code  (timeout connect resolve tls reset too_large failed)
 *
 * Synchronous here: each lua_State keeps one easy handle in a registry
 * userdata (with __gc), so sequential calls reuse connections and TLS
 * sessions.  The host replaces both functions under `serve` with versions that
 * yield the handler's coroutine (host/upstream.c) and share everything below
 * through http.h.  Redirects are never followed; TLS verification is on
 * unless `verify = false`.  Only http and https URLs are accepted by libcurl.
 *
 * `fresh_connect = true` opens a new connection for the call.  libcurl
 * resends a request, on a new connection, when a reused keep-alive
 * connection closes before any byte of the answer (curl < 8.16 has no way to
 * forbid that); a request that must reach the server at most once (the OAuth
 * code exchange: Stripe revokes the connection when a code is used twice)
 * sets it, so the call fails instead of being sent again.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "buf.h"

#define XFER_MT   "stripe_connect.http.transfer"
#define HANDLE_MT "stripe_connect.http.handle"
#define DEFAULT_TIMEOUT         30.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_SIZE        (8L * 1024 * 1024)
#define MAX_MAX_SIZE            (1L << 40)   /* a bigger max_size means "no cap" */

static const char handle_key = 'h';   /* registry key of this state's easy handle */

struct sc_http_xfer {
    struct curl_slist *headers;
    sc_buf body, head;
    size_t max_size;
    int too_large;
    CURLcode setup;
    char errbuf[CURL_ERROR_SIZE];
};

static void xfer_release(sc_http_xfer *x)
{
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    sc_buf_free(&x->body);
    sc_buf_free(&x->head);
}

/* __gc of a transfer: frees what it owns (idempotent). */
static int xfer_gc(lua_State *L)
{
    xfer_release((sc_http_xfer *)luaL_checkudata(L, 1, XFER_MT));
    return 0;
}

/* curl write callback: response body bytes, capped at max_size. */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sc_http_xfer *x = ud;
    size_t len = size * n;
    if (x->body.len + len > x->max_size) {
        x->too_large = 1;
        return 0;
    }
    return sc_buf_add(&x->body, p, len) == 0 ? len : 0;
}

/* curl header callback: raw header lines; a new status line starts over
 * (interim 1xx responses). */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    sc_http_xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        x->head.len = 0;
    if (x->head.len + len > x->max_size) {
        x->too_large = 1;
        return 0;
    }
    return sc_buf_add(&x->head, p, len) == 0 ? len : 0;
}

double sc_check_seconds(lua_State *L, int idx)
{
    double s = luaL_checknumber(L, idx);
    if (!(s >= 0) || s > 1e9)
        luaL_argerror(L, idx, "seconds must be a non-negative number");
    return s;
}

int sc_is_tchar(unsigned char c)
{
    return c > 32 && c < 127 && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

int sc_is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!sc_is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Append "Name: value" to the transfer's header list; raises on CR/LF/NUL. */
static void add_header(lua_State *L, sc_http_xfer *x, const char *name, int vidx)
{
    size_t vlen;
    if (lua_type(L, vidx) != LUA_TSTRING && lua_type(L, vidx) != LUA_TNUMBER)
        luaL_error(L, "http_request: header '%s' must be a string", name);
    const char *v = lua_tolstring(L, vidx, &vlen);
    if (strlen(v) != vlen || strpbrk(v, "\r\n") != NULL)
        luaL_error(L, "http_request: header '%s' contains CR, LF or NUL", name);
    /* "Name;" is curl's spelling of a header with an empty value. */
    lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, v);
    struct curl_slist *l = curl_slist_append(x->headers, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (l == NULL)
        luaL_error(L, "http_request: out of memory");
    x->headers = l;
}

/* headers = { Name = "v" | {"v1", "v2"} }.  Stack: [-0, +0]. */
static void read_headers(lua_State *L, sc_http_xfer *x, int t)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        size_t nlen;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "http_request: header names must be strings");
        const char *name = lua_tolstring(L, -2, &nlen);
        if (!sc_is_token(name, nlen))
            luaL_error(L, "http_request: invalid header name '%s'", name);
        if (lua_type(L, -1) == LUA_TTABLE) {
            int n = (int)lua_rawlen(L, -1);
            for (int i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                add_header(L, x, name, lua_gettop(L));
                lua_pop(L, 1);
            }
        } else {
            add_header(L, x, name, lua_gettop(L));
        }
        lua_pop(L, 1);
    }
}

static const char *const option_names[] = {
    "body", "ca_file", "connect_timeout", "fresh_connect", "headers", "max_size", "method",
    "timeout", "url", "verify", NULL
};

/* Raise on any key of the options table that is not a known option. */
static void check_option_keys(lua_State *L, int t)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int i = 0;
        while (k != NULL && option_names[i] != NULL && strcmp(option_names[i], k) != 0)
            i++;
        if (k == NULL || option_names[i] == NULL)
            luaL_error(L, "http_request: unknown option '%s'",
                       k ? k : luaL_typename(L, -1));
    }
}

/* Field `name` of the options table as a string, or NULL when absent. */
static const char *opt_string(lua_State *L, int t, const char *name, size_t *len)
{
    lua_getfield(L, t, name);
    const char *s = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "http_request: option '%s' must be a string", name);
        s = lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1);   /* still referenced by the options table */
    return s;
}

/* Field `name` of the options table as a positive number, or dflt. */
static double opt_positive(lua_State *L, int t, const char *name, double dflt)
{
    lua_getfield(L, t, name);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0))
            luaL_error(L, "http_request: option '%s' must be a positive number", name);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static long to_ms(double s)
{
    double ms = ceil(s * 1000.0);
    return ms > 2e9 ? 2000000000L : (long)ms;
}

/* Boolean option `name` of the table at t (def when absent); raises otherwise. */
static int opt_boolean(lua_State *L, int t, const char *name, int def)
{
    lua_getfield(L, t, name);
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        luaL_error(L, "http_request: option '%s' must be a boolean", name);
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The options of one call, checked (strings point into the options table). */
typedef struct request_opts {
    const char *url, *body, *method, *ca_file;
    size_t blen;
    double timeout, connect_timeout;
    int verify, fresh_connect;
} request_opts;

/* Check the options table at t into ro and x (max_size, header list);
 * raises on misuse. */
static void read_options(lua_State *L, int t, request_opts *ro, sc_http_xfer *x)
{
    check_option_keys(L, t);
    ro->url = opt_string(L, t, "url", NULL);
    if (ro->url == NULL)
        luaL_error(L, "http_request: option 'url' is required");
    ro->body = opt_string(L, t, "body", &ro->blen);
    ro->method = opt_string(L, t, "method", NULL);
    if (ro->method != NULL && !sc_is_token(ro->method, strlen(ro->method)))
        luaL_error(L, "http_request: invalid method '%s'", ro->method);
    ro->ca_file = opt_string(L, t, "ca_file", NULL);
    ro->timeout = opt_positive(L, t, "timeout", DEFAULT_TIMEOUT);
    ro->connect_timeout = opt_positive(L, t, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    double max = opt_positive(L, t, "max_size", (double)DEFAULT_MAX_SIZE);
    x->max_size = max < (double)MAX_MAX_SIZE ? (size_t)max : (size_t)MAX_MAX_SIZE;
    ro->verify = opt_boolean(L, t, "verify", 1);
    ro->fresh_connect = opt_boolean(L, t, "fresh_connect", 0);
    lua_getfield(L, t, "headers");
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_istable(L, -1), t, "option 'headers' must be a table");
        read_headers(L, x, lua_gettop(L));
    }
    lua_pop(L, 1);
    /* curl would wait for "100 Continue" on large bodies; no server here needs it. */
    struct curl_slist *l = curl_slist_append(x->headers, "Expect:");
    if (l == NULL)
        luaL_error(L, "http_request: out of memory");
    x->headers = l;
}

#define SETOPT(easy, opt, val) \
    do { if (x->setup == CURLE_OK) x->setup = curl_easy_setopt((easy), (opt), (val)); } while (0)

/* Configure easy for one transfer in one go (nothing here raises); a
 * refused option is kept in x->setup. */
static void configure(CURL *easy, const request_opts *ro, sc_http_xfer *x)
{
    curl_easy_reset(easy);
    SETOPT(easy, CURLOPT_URL, ro->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
    SETOPT(easy, CURLOPT_TIMEOUT_MS, to_ms(ro->timeout));
    SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, to_ms(ro->connect_timeout));
    SETOPT(easy, CURLOPT_SSL_VERIFYPEER, ro->verify ? 1L : 0L);
    SETOPT(easy, CURLOPT_SSL_VERIFYHOST, ro->verify ? 2L : 0L);
    if (ro->fresh_connect)
        SETOPT(easy, CURLOPT_FRESH_CONNECT, 1L);
    if (ro->ca_file != NULL)
        SETOPT(easy, CURLOPT_CAINFO, ro->ca_file);
    SETOPT(easy, CURLOPT_HTTPHEADER, x->headers);
    SETOPT(easy, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(easy, CURLOPT_WRITEDATA, (void *)x);
    SETOPT(easy, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(easy, CURLOPT_HEADERDATA, (void *)x);
    SETOPT(easy, CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_size);
    if (ro->body != NULL) {
        SETOPT(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ro->blen);
        SETOPT(easy, CURLOPT_COPYPOSTFIELDS, ro->body);
    }
    const char *m = ro->method;
    if (m != NULL && strcmp(m, "HEAD") == 0)
        SETOPT(easy, CURLOPT_NOBODY, 1L);
    else if (m != NULL && !(strcmp(m, "GET") == 0 && ro->body == NULL)
             && !(strcmp(m, "POST") == 0 && ro->body != NULL))
        SETOPT(easy, CURLOPT_CUSTOMREQUEST, m);
}

sc_http_xfer *sc_http_prepare(lua_State *L, int opts, CURL *easy)
{
    if (opts < 0 && opts > LUA_REGISTRYINDEX)
        opts = lua_gettop(L) + opts + 1;
    luaL_checktype(L, opts, LUA_TTABLE);
    sc_http_xfer *x = lua_newuserdata(L, sizeof *x);
    memset(x, 0, sizeof *x);
    luaL_getmetatable(L, XFER_MT);
    lua_setmetatable(L, -2);
    request_opts ro;
    read_options(L, opts, &ro, x);
    configure(easy, &ro, x);
    return x->setup == CURLE_OK ? x : NULL;
}

CURLcode sc_http_setup_code(const sc_http_xfer *x)
{
    return x->setup;
}

/* Short machine code for a libcurl failure. */
static const char *error_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_CONNECT:
        return "connect";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "resolve";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return "tls";
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return "reset";
    case CURLE_FILESIZE_EXCEEDED:
        return "too_large";
    default:
        return "failed";
    }
}

/* Add one response header (name lower-cased) to the table at t: repeats
 * joined with ", ", set-cookie an array.  Stack: [-0, +0]. */
static void add_response_header(lua_State *L, int t, const char *name, size_t nlen,
                                const char *v, size_t vlen)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < nlen; i++)
        luaL_addchar(&b, (char)tolower((unsigned char)name[i]));
    luaL_pushresult(&b);
    if (strcmp(lua_tostring(L, -1), "set-cookie") == 0) {
        sc_subtable(L, t);                             /* name, the cookies */
        lua_pushlstring(L, v, vlen);
        lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
        return;
    }
    lua_pushvalue(L, -1);
    lua_rawget(L, t);                                  /* name, old */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, v, vlen);
    } else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, vlen);
        lua_concat(L, 3);
    }
    lua_rawset(L, t);
}

/* The header lines of the final response as a table.  Stack: [-0, +1]. */
static void push_headers(lua_State *L, const sc_buf *h)
{
    lua_newtable(L);
    int t = lua_gettop(L);
    const char *p = h->data, *end = h->data ? h->data + h->len : NULL;
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *colon = memchr(p, ':', (size_t)((eol ? eol : end) - p));
        int status_line = next - p >= 5 && memcmp(p, "HTTP/", 5) == 0;
        if (colon != NULL && colon != p && !status_line) {
            const char *v = colon + 1, *ve = eol ? eol : end;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            add_response_header(L, t, p, (size_t)(colon - p), v, (size_t)(ve - v));
        }
        p = next;
    }
}

int sc_http_push_result(lua_State *L, sc_http_xfer *x, CURL *easy, CURLcode rc)
{
    if (x->too_large)
        rc = CURLE_FILESIZE_EXCEEDED;
    if (rc != CURLE_OK) {
        const char *code = error_code(rc);
        lua_pushnil(L);
        if (rc == CURLE_FILESIZE_EXCEEDED) {
            char msg[64];
            snprintf(msg, sizeof msg, "too_large: response exceeds %zu bytes", x->max_size);
            lua_pushstring(L, msg);
        } else {
            lua_pushfstring(L, "%s: %s", code, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        }
        lua_pushstring(L, code);
        xfer_release(x);
        return 3;
    }
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    lua_createtable(L, 0, 3);
    sc_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    push_headers(L, &x->head);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
    lua_setfield(L, -2, "body");
    xfer_release(x);
    return 1;
}

/* __gc of the per-state easy handle box. */
static int handle_gc(lua_State *L)
{
    CURL **box = (CURL **)luaL_checkudata(L, 1, HANDLE_MT);
    if (*box != NULL) {
        curl_easy_cleanup(*box);
        *box = NULL;
    }
    return 0;
}

/* This state's reusable easy handle (created on first use). */
static CURL *state_handle(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&handle_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    CURL **box = (CURL **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (box != NULL && *box != NULL)
        return *box;
    box = lua_newuserdata(L, sizeof *box);
    *box = NULL;
    luaL_getmetatable(L, HANDLE_MT);
    lua_setmetatable(L, -2);
    *box = curl_easy_init();
    if (*box == NULL)
        luaL_error(L, "http_request: cannot create a curl handle");
    lua_pushlightuserdata(L, (void *)&handle_key);
    lua_insert(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return *box;
}

/* http_request(opts) -> res | nil, message, code (blocking). */
int sc_http_request_sync(lua_State *L)
{
    CURL *easy = state_handle(L);
    sc_http_xfer *ok = sc_http_prepare(L, 1, easy);
    sc_http_xfer *x = (sc_http_xfer *)lua_touserdata(L, -1);
    CURLcode rc = ok ? curl_easy_perform(easy) : sc_http_setup_code(x);
    return sc_http_push_result(L, x, easy, rc);
}

/* sleep(seconds): blocks the calling thread. */
int sc_sleep_sync(lua_State *L)
{
    double s = sc_check_seconds(L, 1);
    struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

void sc_open_http(lua_State *L)
{
    luaL_newmetatable(L, XFER_MT);
    lua_pushcfunction(L, xfer_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, HANDLE_MT);
    lua_pushcfunction(L, handle_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {
        { "http_request", sc_http_request_sync },
        { "sleep",        sc_sleep_sync },
        { NULL, NULL }
    };
    luaL_setfuncs(L, funcs, 0);
}
