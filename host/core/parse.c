/*
 * parse.c — query-string, form-body and Cookie-header parsing with limits.
 *
 *   core.parse_query(s [, opts])         -> t | nil, message, code
 *   core.parse_form(s [, opts])          -> t | nil, message, code
 *   core.parse_cookies(header [, opts])  -> t | nil, message, code
 *
 * The result maps each name to its value (a string) or, when the name
 * appears more than once, to an array of its values in input order.  The
 * input comes from the network, so a limit exceeded or a malformed
 * percent-escape answers `nil, message, code` (code: "too_large",
 * "too_many_fields", "malformed"); messages never quote the input.
 *
 * Query and form: fields separated by '&'; `name=value`, or `name` alone
 * (value ""); empty fields (`a=1&&b=2`) are skipped; a field whose name is
 * empty (`=x`) counts toward max_fields but is dropped.  Both decode '+' as a
 * space by default, as browsers encode forms and URLSearchParams reads
 * queries (application/x-www-form-urlencoded); `plus_as_space = false`
 * keeps '+' literal.  They differ only in their default max_length.
 *
 * Cookies (RFC 6265 §4.2.1, §5.4): `name=value` pairs separated by ';',
 * spaces and tabs around names and values trimmed, one pair of double quotes
 * around a value removed; values are not percent-decoded (cookie values are
 * opaque).  A pair without '=' or with an empty name is ignored.
 *
 * opts: max_length (bytes, default 64 KiB query, 1 MiB form, 8 KiB
 * cookies), max_fields (default 256), and for query and form plus_as_space.
 * Unknown option keys and wrong option types raise.
 */
#include <string.h>

#include "core.h"

#define PARSE_MAX_FIELDS   256
#define PARSE_QUERY_MAX    (64 * 1024)
#define PARSE_FORM_MAX     (1024 * 1024)
#define PARSE_COOKIE_MAX   (8 * 1024)

typedef struct {
    const char *fname;
    size_t max_length;
    size_t max_fields;
    int plus_as_space;
} parse_opts;

/* A non-negative integral number at the top of the stack; raises otherwise. */
static size_t parse_limit(lua_State *L, const parse_opts *o, const char *key)
{
    lua_Number x = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (!(x >= 0 && x <= 2147483647) || x != (lua_Number)(long long)x)
        luaL_error(L, "%s: option %s must be a non-negative whole number", o->fname, key);
    return (size_t)x;
}

/* Reads the options table at idx (may be nil) into o; unknown keys raise. */
static void parse_read_opts(lua_State *L, int idx, parse_opts *o, int allow_plus)
{
    if (lua_isnoneornil(L, idx))
        return;
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "%s: options must be a table", o->fname);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k && strcmp(k, "max_length") == 0) {
            o->max_length = parse_limit(L, o, k);
        } else if (k && strcmp(k, "max_fields") == 0) {
            o->max_fields = parse_limit(L, o, k);
        } else if (k && allow_plus && strcmp(k, "plus_as_space") == 0) {
            if (lua_type(L, -1) != LUA_TBOOLEAN)
                luaL_error(L, "%s: option plus_as_space must be a boolean", o->fname);
            o->plus_as_space = lua_toboolean(L, -1);
        } else {
            luaL_error(L, "%s: unknown option '%s'", o->fname, k ? k : luaL_typename(L, -2));
        }
        lua_pop(L, 1);
    }
}

/* what is a format with one %d (the limit or field number).  Stack: [-0, +3]. */
static int parse_fail(lua_State *L, const parse_opts *o, const char *code, const char *what,
                      size_t n)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: ", o->fname);
    lua_pushfstring(L, what, (int)n);
    lua_concat(L, 2);
    lua_pushstring(L, code);
    return 3;
}

/*
 * Adds name (at -2) = value (at -1) to the result table at r: a first value
 * is stored as a string, a second turns it into an array.  Stack: [-2, +0].
 */
static void parse_add(lua_State *L, int r)
{
    lua_pushvalue(L, -2);
    lua_rawget(L, r);
    switch (lua_type(L, -1)) {
    case LUA_TNIL:
        lua_pop(L, 1);
        lua_rawset(L, r);
        break;
    case LUA_TSTRING:                       /* name value old */
        lua_createtable(L, 2, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);              /* name value list */
        lua_insert(L, -2);
        lua_rawseti(L, -2, 2);              /* name list */
        lua_rawset(L, r);
        break;
    default:                                /* name value list */
        lua_insert(L, -2);
        lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
        break;
    }
}

/* Pushes the percent-decoding of s[0..n) using scratch; 0 or -1 (malformed). */
static int parse_push_decoded(lua_State *L, const char *s, size_t n, int plus, char *scratch)
{
    size_t len, pos;
    if (sc_percent_decode(s, n, plus, scratch, &len, &pos) != 0)
        return -1;
    lua_pushlstring(L, scratch, len);
    return 0;
}

/* '&'-separated name=value fields (query strings and form bodies). */
static int parse_fields(lua_State *L, parse_opts *o)
{
    size_t n, count = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    parse_read_opts(L, 2, o, 1);
    lua_settop(L, 1);
    if (n > o->max_length)
        return parse_fail(L, o, "too_large", "input longer than max_length (%d bytes)",
                          o->max_length);
    char *scratch = (char *)lua_newuserdata(L, n ? n : 1);
    lua_newtable(L);
    int r = lua_gettop(L);
    for (size_t i = 0; i <= n;) {
        const char *amp = memchr(s + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - s) : n;
        if (end > i) {
            if (++count > o->max_fields)
                return parse_fail(L, o, "too_many_fields", "more than max_fields (%d) fields",
                                  o->max_fields);
            const char *eq = memchr(s + i, '=', end - i);
            size_t nend = eq ? (size_t)(eq - s) : end;
            if (parse_push_decoded(L, s + i, nend - i, o->plus_as_space, scratch) != 0)
                return parse_fail(L, o, "malformed", "malformed percent-escape in field %d", count);
            size_t vstart = eq ? nend + 1 : end;
            if (parse_push_decoded(L, s + vstart, end - vstart, o->plus_as_space, scratch) != 0)
                return parse_fail(L, o, "malformed", "malformed percent-escape in field %d", count);
            if (lua_rawlen(L, -2) == 0)
                lua_pop(L, 2);
            else
                parse_add(L, r);
        }
        i = end + 1;
    }
    return 1;
}

/* parse_query(s [, opts]) -> t | nil, message, code.  Stack: [-2, +1|3]. */
static int parse_query(lua_State *L)
{
    parse_opts o = { "parse_query", PARSE_QUERY_MAX, PARSE_MAX_FIELDS, 1 };
    return parse_fields(L, &o);
}

/* parse_form(s [, opts]) -> t | nil, message, code.  Stack: [-2, +1|3]. */
static int parse_form(lua_State *L)
{
    parse_opts o = { "parse_form", PARSE_FORM_MAX, PARSE_MAX_FIELDS, 1 };
    return parse_fields(L, &o);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* parse_cookies(header [, opts]) -> t | nil, message, code.  Stack: [-2, +1|3]. */
static int parse_cookies(lua_State *L)
{
    parse_opts o = { "parse_cookies", PARSE_COOKIE_MAX, PARSE_MAX_FIELDS, 0 };
    size_t n, count = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    parse_read_opts(L, 2, &o, 0);
    lua_settop(L, 1);
    if (n > o.max_length)
        return parse_fail(L, &o, "too_large", "input longer than max_length (%d bytes)",
                          o.max_length);
    lua_newtable(L);
    int r = lua_gettop(L);
    for (size_t i = 0; i <= n;) {
        const char *semi = memchr(s + i, ';', n - i);
        size_t end = semi ? (size_t)(semi - s) : n, a = i, z = end;
        while (a < z && is_ows(s[a])) a++;
        while (z > a && is_ows(s[z - 1])) z--;
        if (z > a) {
            if (++count > o.max_fields)
                return parse_fail(L, &o, "too_many_fields", "more than max_fields (%d) fields",
                                  o.max_fields);
            const char *eq = memchr(s + a, '=', z - a);
            if (eq != NULL) {
                size_t na = a, nz = (size_t)(eq - s), va = nz + 1, vz = z;
                while (nz > na && is_ows(s[nz - 1])) nz--;
                while (va < vz && is_ows(s[va])) va++;
                if (vz - va >= 2 && s[va] == '"' && s[vz - 1] == '"') {
                    va++;
                    vz--;
                }
                if (nz > na) {
                    lua_pushlstring(L, s + na, nz - na);
                    lua_pushlstring(L, s + va, vz - va);
                    parse_add(L, r);
                }
            }
        }
        i = end + 1;
    }
    return 1;
}

static const luaL_Reg parse_funcs[] = {
    {"parse_cookies", parse_cookies},
    {"parse_form",    parse_form},
    {"parse_query",   parse_query},
    {NULL, NULL}
};

void sc_open_parse(lua_State *L)
{
    luaL_setfuncs(L, parse_funcs, 0);
}
