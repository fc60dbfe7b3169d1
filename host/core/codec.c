/*
 * codec.c — percent-encoding and form encoding with Stripe's bracket rules.
 *
 *   core.url_encode(s)                  -> s   (RFC 3986: all but ALPHA DIGIT - . _ ~
 *                                               become %XX, uppercase hex)
 *   core.url_decode(s [, plus_as_space]) -> s | nil, message
 *   core.form_encode(t)                 -> "a=1&stripe_user[email]=x%40y&…"
 *
 * form_encode follows the encoding Stripe's SDKs send: a nested table's key
 * becomes `parent[child]`, an array's elements `parent[0]`, `parent[1]`, …
 * (zero-based), booleans `true`/`false`, integral numbers without a decimal
 * point.  Keys are sorted bytewise within each level so the output is
 * deterministic; the structural brackets stay literal (as stripe-node and
 * stripe-ruby send them), while a bracket inside a key name is encoded.
 * An empty table emits nothing.  Values of other types, string keys mixed with
 * array indexes, sparse arrays, empty key names, non-finite numbers, cycles
 * and nesting deeper than FORM_MAX_DEPTH raise: the table is the program's,
 * not the network's.  The parsers live in parse.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "buf.h"

#define FORM_MAX_DEPTH 32
#define FORM_STATE_MT  "stripe_connect.codec.form_state"

static const char upper_hex[] = "0123456789ABCDEF";

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || c == '-' || c == '.' || c == '_' || c == '~';
}

size_t sc_url_encoded_len(const char *s, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += is_unreserved((unsigned char)s[i]) ? 1 : 3;
    return len;
}

/* Writes sc_url_encoded_len(s, n) bytes to out (no NUL). */
void sc_url_encode(const char *s, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = upper_hex[c >> 4];
            *out++ = upper_hex[c & 15];
        }
    }
}

int sc_percent_decode(const char *s, size_t n, int plus_as_space, char *out,
                      size_t *outlen, size_t *errpos)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 1 < n ? sc_hex_digit((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? sc_hex_digit((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *errpos = i;
                return -1;
            }
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = (plus_as_space && c == '+') ? ' ' : (char)c;
        }
    }
    *outlen = o;
    return 0;
}

/* url_encode(s) -> percent-encoded s.  Stack: [-1, +1]. */
static int codec_url_encode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    size_t len = sc_url_encoded_len(s, n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len);
    sc_url_encode(s, n, out);
    luaL_pushresultsize(&b, len);
    return 1;
}

/* url_decode(s [, plus_as_space]) -> s | nil, message.  Stack: [-2, +1|2]. */
static int codec_url_decode(lua_State *L)
{
    size_t n, len, pos;
    const char *s = luaL_checklstring(L, 1, &n);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TBOOLEAN);
    int plus = lua_toboolean(L, 2);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n);
    if (sc_percent_decode(s, n, plus, out, &len, &pos) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "url_decode: malformed percent-escape at byte %d", (int)pos + 1);
        return 2;
    }
    luaL_pushresultsize(&b, len);
    return 1;
}

/* ------------------------------------------------------------- form_encode */

/* Lives in a userdata so a raise in the middle frees the buffers (__gc). */
typedef struct {
    sc_buf out;   /* the encoded form so far */
    sc_buf key;   /* the current key path, e.g. stripe_user[email] (NUL-terminated) */
    int seen;       /* stack index of the table of tables on the current path */
} form_state;

static int form_state_gc(lua_State *L)
{
    form_state *st = (form_state *)lua_touserdata(L, 1);
    sc_buf_free(&st->out);
    sc_buf_free(&st->key);
    return 0;
}

/* Room for `extra` more bytes plus a NUL; raises on allocation failure. */
static char *buf_reserve(lua_State *L, sc_buf *b, size_t extra)
{
    char *end = sc_buf_reserve(b, extra);
    if (end == NULL)
        luaL_error(L, "form_encode: not enough memory");
    return end;
}

static void buf_add(lua_State *L, sc_buf *b, const char *s, size_t n)
{
    if (sc_buf_add(b, s, n) != 0)
        luaL_error(L, "form_encode: not enough memory");
}

static void buf_add_encoded(lua_State *L, sc_buf *b, const char *s, size_t n)
{
    size_t len = sc_url_encoded_len(s, n);
    sc_url_encode(s, n, buf_reserve(L, b, len));
    b->len += len;
    b->data[b->len] = '\0';
}

static int form_fail(lua_State *L, form_state *st, const char *what)
{
    return luaL_error(L, "form_encode: %s at '%s'", what, st->key.len ? st->key.data : "(top level)");
}

/* Formats the number at idx: integral -> no decimal point; else shortest exact. */
static size_t form_number(lua_State *L, form_state *st, int idx, char *out, size_t size)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx))
        return (size_t)snprintf(out, size, LUA_INTEGER_FMT, lua_tointeger(L, idx));
#endif
    double x = (double)lua_tonumber(L, idx);
    if (!isfinite(x))
        form_fail(L, st, "number is not finite");
    if (x == floor(x) && fabs(x) < 9007199254740992.0)
        return (size_t)snprintf(out, size, "%.0f", x);
    int len = snprintf(out, size, "%.15g", x);
    if (strtod(out, NULL) != x)
        len = snprintf(out, size, "%.17g", x);
    return (size_t)len;
}

static void form_pair(lua_State *L, form_state *st, const char *v, size_t vlen, int encode)
{
    if (st->out.len > 0)
        buf_add(L, &st->out, "&", 1);
    buf_add(L, &st->out, st->key.data, st->key.len);
    buf_add(L, &st->out, "=", 1);
    if (encode)
        buf_add_encoded(L, &st->out, v, vlen);
    else
        buf_add(L, &st->out, v, vlen);
}

static void form_table(lua_State *L, form_state *st, int t, int depth);

/* Emits the value on top of the stack under the current key path. */
static void form_value(lua_State *L, form_state *st, int depth)
{
    int v = lua_gettop(L);
    char num[64];
    size_t len;
    const char *s;
    switch (lua_type(L, v)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, v, &len);
        form_pair(L, st, s, len, 1);
        break;
    case LUA_TNUMBER:
        len = form_number(L, st, v, num, sizeof num);
        form_pair(L, st, num, len, 1);
        break;
    case LUA_TBOOLEAN:
        s = lua_toboolean(L, v) ? "true" : "false";
        form_pair(L, st, s, strlen(s), 0);
        break;
    case LUA_TTABLE:
        if (depth >= FORM_MAX_DEPTH)
            form_fail(L, st, "tables nested too deeply");
        lua_pushvalue(L, v);
        lua_rawget(L, st->seen);
        if (lua_toboolean(L, -1))
            form_fail(L, st, "cycle");
        lua_pop(L, 1);
        lua_pushvalue(L, v);
        lua_pushboolean(L, 1);
        lua_rawset(L, st->seen);
        form_table(L, st, v, depth + 1);
        lua_pushvalue(L, v);
        lua_pushnil(L);
        lua_rawset(L, st->seen);
        break;
    default:
        lua_pushfstring(L, "unsupported value of type %s", luaL_typename(L, v));
        form_fail(L, st, lua_tostring(L, -1));
    }
}

typedef struct {
    const char *s;
    size_t len;
} form_key;

static int form_key_cmp(const void *a, const void *b)
{
    const form_key *x = (const form_key *)a, *y = (const form_key *)b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Counts string keys and array indexes 1..n of the table at t; raises on others. */
static void form_count_keys(lua_State *L, form_state *st, int t, size_t *nstr, size_t *nidx)
{
    *nstr = *nidx = 0;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            (*nstr)++;
        } else if (lua_type(L, -1) == LUA_TNUMBER && sc_isinteger(L, -1)
                   && lua_tonumber(L, -1) >= 1) {
            (*nidx)++;
        } else {
            lua_pushfstring(L, "key of type %s is not a string or an array index",
                            luaL_typename(L, -1));
            form_fail(L, st, lua_tostring(L, -1));
        }
    }
}

/* The elements of an array: parent[0], parent[1], … */
static void form_array(lua_State *L, form_state *st, int t, size_t n, int depth)
{
    size_t saved = st->key.len;
    for (size_t i = 1; i <= n; i++) {
        char idx[32];
        int len = snprintf(idx, sizeof idx, "[%lu]", (unsigned long)(i - 1));
        lua_rawgeti(L, t, (int)i);
        if (lua_isnil(L, -1))
            form_fail(L, st, "sparse array");
        buf_add(L, &st->key, idx, (size_t)len);
        form_value(L, st, depth);
        lua_pop(L, 1);
        st->key.len = saved;
        st->key.data[saved] = '\0';
    }
}

/* The fields of a map, sorted by key: name at the top level, parent[name] below. */
static void form_map(lua_State *L, form_state *st, int t, size_t n, int depth)
{
    form_key *keys = (form_key *)lua_newuserdata(L, n * sizeof *keys);
    size_t i = 0, saved = st->key.len;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);   /* the table keeps the key string alive */
        keys[i].s = lua_tolstring(L, -1, &keys[i].len);
        i++;
    }
    qsort(keys, n, sizeof *keys, form_key_cmp);
    for (i = 0; i < n; i++) {
        if (keys[i].len == 0)
            form_fail(L, st, "empty key name");
        if (depth > 1)
            buf_add(L, &st->key, "[", 1);
        buf_add_encoded(L, &st->key, keys[i].s, keys[i].len);
        if (depth > 1)
            buf_add(L, &st->key, "]", 1);
        lua_pushlstring(L, keys[i].s, keys[i].len);
        lua_rawget(L, t);
        form_value(L, st, depth);
        lua_pop(L, 1);
        st->key.len = saved;
        st->key.data[saved] = '\0';
    }
    lua_pop(L, 1);
}

/* Emits every field of the table at t (depth 1 is the top level). */
static void form_table(lua_State *L, form_state *st, int t, int depth)
{
    size_t nstr, nidx;
    luaL_checkstack(L, 8, "form_encode: tables nested too deeply");
    form_count_keys(L, st, t, &nstr, &nidx);
    if (nstr > 0 && nidx > 0)
        form_fail(L, st, "table mixes string keys and array indexes");
    if (nidx > 0 && depth == 1)
        form_fail(L, st, "top-level keys must be strings");
    if (nidx > 0)
        form_array(L, st, t, nidx, depth);
    else if (nstr > 0)
        form_map(L, st, t, nstr, depth);
}

/* form_encode(t) -> "k=v&parent[child]=v&list[0]=v".  Stack: [-1, +1]. */
static int codec_form_encode(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    form_state *st = (form_state *)lua_newuserdata(L, sizeof *st);
    memset(st, 0, sizeof *st);
    if (luaL_newmetatable(L, FORM_STATE_MT)) {
        lua_pushcfunction(L, form_state_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    buf_reserve(L, &st->out, 0);
    buf_reserve(L, &st->key, 0);
    st->out.data[0] = st->key.data[0] = '\0';
    lua_newtable(L);
    st->seen = lua_gettop(L);
    lua_pushvalue(L, 1);
    lua_pushboolean(L, 1);
    lua_rawset(L, st->seen);
    form_table(L, st, 1, 1);
    lua_pushlstring(L, st->out.data, st->out.len);
    return 1;
}

static const luaL_Reg codec_funcs[] = {
    {"form_encode", codec_form_encode},
    {"url_decode",  codec_url_decode},
    {"url_encode",  codec_url_encode},
    {NULL, NULL}
};

void sc_open_codec(lua_State *L)
{
    luaL_setfuncs(L, codec_funcs, 0);
}
