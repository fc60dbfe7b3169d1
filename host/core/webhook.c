/*
 * webhook.c — `Stripe-Signature` verification (doc/PROTOCOL.md §5).
 *
 *   core.webhook_verify(payload, header, secrets [, opts])
 *     -> true, timestamp | nil, message, reason_code
 *
 * The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>…]`: one
 * element list split on ',' (spaces or tabs after a comma are skipped, as
 * stripe-ruby's split on the regex `,\s*` does), each element `key=value`
 * split at its first '='.
 * Exactly one `t` (decimal digits, no sign, no leading zeros); every `v1`
 * is a candidate; other schemes (v0, …) are ignored to prevent downgrade
 * attacks.  The signature is HMAC-SHA256 over `t "." payload` under each
 * secret (several during rotation); the event is accepted when any v1
 * candidate equals any secret's MAC.  Every (candidate, secret) pair is
 * compared in constant time and without an early exit.  The signature is
 * checked first, then the timestamp, as Stripe's libraries do.
 *
 * Tolerance is two-sided: `now - t > tolerance` is too_old and
 * `t - now > tolerance` is in_future.  Unlike Stripe's SDKs, a tolerance of 0
 * does not switch the check off: tolerance must be a positive integer number
 * of seconds, anything else (0 included) raises, because 0 "disables" the
 * check there and "exact second only" would reject nearly every real
 * delivery.  Default 300 s (Stripe's default).
 *
 * Reason codes: no_payload, no_header, malformed_header (also for a header
 * over 8 KiB or with more than 64 elements), no_v1, no_match, too_old,
 * in_future.  Messages never contain a secret or the header's signatures.
 * Misuse (wrong types, empty secret, unknown option keys) raises.
 */
#include <string.h>
#include <time.h>

#include "core.h"

#define WH_MAX_HEADER      8192
#define WH_MAX_ELEMENTS    64
#define WH_MAX_SECRETS     16
#define WH_MAX_TS_DIGITS   15    /* < 2^53: exact as a LuaJIT number */
#define WH_DEFAULT_TOL     300
#define WH_MAX_TS          999999999999999LL
#define WH_MAX_TOL         (10LL * 365 * 24 * 3600)

typedef struct {
    const char *t;          /* the timestamp as written (it is what was signed) */
    size_t tlen;
    long long ts;
    int nv1;                /* v1 elements seen, well-formed or not */
    int ncand;              /* v1 values that are 64 hex digits */
    unsigned char cand[WH_MAX_ELEMENTS][32];
} wh_header;

typedef struct {
    const char *s;
    size_t len;
} wh_secret;

/* Decodes exactly 64 hex digits into out[32]; 0 on success, -1 otherwise. */
static int wh_decode_sig(const char *v, size_t n, unsigned char out[32])
{
    if (n != 64)
        return -1;
    for (size_t i = 0; i < 32; i++) {
        int hi = sc_hex_digit((unsigned char)v[2 * i]);
        int lo = sc_hex_digit((unsigned char)v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* Parses decimal digits (no sign, no leading zero, <= 15 digits). */
static int wh_parse_ts(const char *v, size_t n, long long *out)
{
    long long x = 0;
    if (n == 0 || n > WH_MAX_TS_DIGITS || (n > 1 && v[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 0;
}

/* One `key=value` element; returns NULL or a static message on error. */
static const char *wh_element(wh_header *h, const char *e, size_t n)
{
    const char *eq = memchr(e, '=', n);
    if (eq == NULL || eq == e)
        return "header element without key=value";
    size_t klen = (size_t)(eq - e), vlen = n - klen - 1;
    const char *v = eq + 1;
    if (klen == 1 && e[0] == 't') {
        if (h->t != NULL)
            return "header has more than one timestamp";
        if (wh_parse_ts(v, vlen, &h->ts) != 0)
            return "header timestamp is not a decimal number of seconds";
        h->t = v;
        h->tlen = vlen;
    } else if (klen == 2 && e[0] == 'v' && e[1] == '1') {
        h->nv1++;
        if (wh_decode_sig(v, vlen, h->cand[h->ncand]) == 0)
            h->ncand++;
    }
    return NULL;
}

/*
 * Splits the header into elements.  Returns NULL on success or a static
 * message (the reason is then malformed_header).
 */
static const char *wh_parse(wh_header *h, const char *s, size_t n)
{
    size_t i = 0, count = 0;
    memset(h, 0, sizeof *h);
    if (n > WH_MAX_HEADER)
        return "header larger than 8 KiB";
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        const char *comma = memchr(s + i, ',', n - i);
        size_t end = comma ? (size_t)(comma - s) : n;
        if (++count > WH_MAX_ELEMENTS)
            return "header has too many elements";
        const char *err = wh_element(h, s + i, end - i);
        if (err != NULL)
            return err;
        if (comma == NULL)
            break;
        i = end + 1;
    }
    if (h->t == NULL)
        return "header has no timestamp";
    return NULL;
}

/* nil, message, code (the core's error order).  Stack: [-0, +3]. */
static int wh_fail(lua_State *L, const char *code, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    return 3;
}

/* Reads argument 3 (a string or a non-empty list of strings) into out. */
static int wh_check_secrets(lua_State *L, wh_secret *out)
{
    int n = 0;
    if (lua_type(L, 3) == LUA_TSTRING) {
        out[0].s = lua_tolstring(L, 3, &out[0].len);
        n = 1;
    } else {
        luaL_checktype(L, 3, LUA_TTABLE);
        n = (int)lua_rawlen(L, 3);
        if (n < 1 || n > WH_MAX_SECRETS)
            luaL_argerror(L, 3, "expected a secret or a list of 1 to 16 secrets");
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, 3, i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, 3, "every secret must be a string");
            out[i].s = lua_tolstring(L, -1, &out[i].len);
            lua_pop(L, 1);   /* the table keeps the string alive */
        }
    }
    for (int i = 0; i < n; i++)
        if (out[i].len == 0)
            luaL_argerror(L, 3, "empty secret");
    return n;
}

/* The number at idx when it is integral and within [lo, hi]; raises otherwise. */
static long long wh_check_whole(lua_State *L, int idx, long long lo, long long hi, const char *what)
{
    lua_Number x = lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : -1e300;
    if (!(x >= (lua_Number)lo && x <= (lua_Number)hi) || x != (lua_Number)(long long)x)
        luaL_argerror(L, 4, what);
    return (long long)x;
}

/* Reads argument 4 (nil or { tolerance =, now = }); unknown keys raise. */
static void wh_check_opts(lua_State *L, long long *tol, long long *now)
{
    *tol = WH_DEFAULT_TOL;
    *now = (long long)time(NULL);
    if (lua_isnoneornil(L, 4))
        return;
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 4) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        if (strcmp(k, "tolerance") == 0) {
            *tol = wh_check_whole(L, -1, 1, WH_MAX_TOL, "tolerance must be a positive whole "
                                  "number of seconds (0 would not disable the check here)");
        } else if (strcmp(k, "now") == 0) {
            *now = wh_check_whole(L, -1, 0, WH_MAX_TS, "now must be a whole number of seconds");
        } else {
            lua_pushfstring(L, "unknown option '%s'", lua_type(L, -2) == LUA_TSTRING ? k : "?");
            luaL_argerror(L, 4, lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
}

/* Any secret with surrounding whitespace (a classic copy-paste mistake)? */
static int wh_secret_has_space(const wh_secret *sec, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char a = (unsigned char)sec[i].s[0];
        unsigned char z = (unsigned char)sec[i].s[sec[i].len - 1];
        if (a == ' ' || a == '\t' || a == '\n' || a == '\r' ||
            z == ' ' || z == '\t' || z == '\n' || z == '\r')
            return 1;
    }
    return 0;
}

/*
 * 1 when any v1 candidate is the MAC of `t "." payload` under any secret,
 * 0 when none is, -1 on an OpenSSL failure.  Every (candidate, secret) pair
 * is compared in constant time, without an early exit.  Stack: [-0, +0].
 */
static int wh_match(lua_State *L, const wh_header *h, const wh_secret *sec, int nsec,
                    const char *payload, size_t plen)
{
    int found = 0, rc = 0;
    lua_pushlstring(L, h->t, h->tlen);
    lua_pushliteral(L, ".");
    lua_pushlstring(L, payload, plen);
    lua_concat(L, 3);
    size_t mlen;
    const char *msg = lua_tolstring(L, -1, &mlen);
    for (int s = 0; s < nsec && rc == 0; s++) {
        unsigned char mac[32];
        if (sc_hmac_sha256(sec[s].s, sec[s].len, msg, mlen, mac) != 0)
            rc = -1;
        for (int c = 0; c < h->ncand && rc == 0; c++)
            found |= sc_ct_equal(h->cand[c], 32, mac, 32);
    }
    lua_pop(L, 1);
    return rc < 0 ? -1 : found;
}

/* webhook_verify(payload, header, secrets [, opts]).  Stack: [-4, +2|3]. */
static int webhook_verify(lua_State *L)
{
    size_t plen, hlen = 0;
    const char *payload = luaL_checklstring(L, 1, &plen);
    const char *header = luaL_optlstring(L, 2, NULL, &hlen);
    wh_secret sec[WH_MAX_SECRETS];
    int nsec = wh_check_secrets(L, sec);
    long long tol, now;
    wh_check_opts(L, &tol, &now);

    if (plen == 0)
        return wh_fail(L, "no_payload", "no webhook payload was provided");
    if (header == NULL || hlen == 0)
        return wh_fail(L, "no_header", "no Stripe-Signature header value was provided");

    wh_header h;
    const char *err = wh_parse(&h, header, hlen);
    if (err != NULL)
        return wh_fail(L, "malformed_header", err);
    if (h.nv1 == 0)
        return wh_fail(L, "no_v1", "no signatures found with expected scheme v1");

    int found = wh_match(L, &h, sec, nsec, payload, plen);
    if (found < 0)
        return luaL_error(L, "webhook_verify: OpenSSL failure");
    if (!found)
        return wh_fail(L, "no_match", wh_secret_has_space(sec, nsec)
            ? "no signature matches the payload (a secret has leading or trailing whitespace)"
            : "no signature matches the payload (verify the raw, unmodified request body)");
    if (now - h.ts > tol)
        return wh_fail(L, "too_old", "timestamp outside the tolerance zone (too old)");
    if (h.ts - now > tol)
        return wh_fail(L, "in_future", "timestamp outside the tolerance zone (in the future)");
    lua_pushboolean(L, 1);
    sc_pushinteger(L, h.ts);
    return 2;
}

static const luaL_Reg webhook_funcs[] = {
    {"webhook_verify", webhook_verify},
    {NULL, NULL}
};

void sc_open_webhook(lua_State *L)
{
    luaL_setfuncs(L, webhook_funcs, 0);
}
