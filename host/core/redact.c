/*
 * redact.c — the one redactor, for log lines and error text.
 *
 *   core.redact(s [, secrets [, min_bytes]]) -> s with secrets replaced by "[redacted]"
 *   sc_redact(s, n, out, cap)  -> the same into a C buffer (the host's log)
 *
 * What it masks: Stripe secret and restricted keys (sk_live_, sk_test_,
 * rk_live_, rk_test_), webhook signing secrets (whsec_), and authorization
 * codes and refresh tokens (ac_, rt_) of 16 or more characters; the prefix
 * stays ("sk_test_[redacted]") so a reader still sees what was there.  A
 * prefix counts only at the start of a word (after a byte that is not a
 * letter, digit or '_'), so "acct_1Fg9…" and "task_…" stay.  `secrets` is a
 * list of configured values (the state keys, the admin token…): each one of
 * min_bytes (default 8) or more is replaced whole wherever it stands, as
 * plain text; a shorter configured one would mask ordinary words and is left
 * alone.  The OAuth calls pass 1: the code and token they sent are masked in
 * Stripe's answer whatever their length.
 *
 * The host's own error lines (host/log.c) pass through sc_redact; the Lua
 * library's (util.redact) through core.redact.
 */
#include <string.h>

#include "core.h"

#define MASK "[redacted]"
#define MIN_CONFIGURED 8        /* bytes a configured secret needs, by default */

static const struct { const char *prefix; size_t len, min; } PREFIXES[] = {
    { "sk_live_", 8, 1 }, { "sk_test_", 8, 1 }, { "rk_live_", 8, 1 }, { "rk_test_", 8, 1 },
    { "whsec_", 6, 1 }, { "ac_", 3, 16 }, { "rt_", 3, 16 },
};

static int word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

int sc_next_secret(const char *s, size_t n, size_t from, size_t *start, size_t *end)
{
    for (size_t i = from; i < n; i++) {
        if (i > 0 && word_byte((unsigned char)s[i - 1]))
            continue;
        for (size_t k = 0; k < sizeof PREFIXES / sizeof PREFIXES[0]; k++) {
            size_t pl = PREFIXES[k].len, j = i + pl;
            if (j > n || memcmp(s + i, PREFIXES[k].prefix, pl) != 0)
                continue;
            while (j < n && word_byte((unsigned char)s[j]))
                j++;
            if (j - i - pl >= PREFIXES[k].min) {
                *start = i + pl;
                *end = j;
                return 1;
            }
            i = j;              /* too short to be one: go on after it */
            break;
        }
    }
    return 0;
}

size_t sc_redact(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0, from = 0, start, end;
    if (cap == 0)
        return 0;
    while (from < n) {
        int found = sc_next_secret(s, n, from, &start, &end);
        size_t keep = (found ? start : n) - from;
        if (keep > cap - 1 - o)
            keep = cap - 1 - o;
        memcpy(out + o, s + from, keep);
        o += keep;
        if (!found)
            break;
        size_t m = strlen(MASK) < cap - 1 - o ? strlen(MASK) : cap - 1 - o;
        memcpy(out + o, MASK, m);
        o += m;
        from = end;
    }
    out[o] = '\0';
    return o;
}

/* Pushes s[0..n) with every occurrence of secret replaced.  Stack: [-0, +1]. */
static void push_replaced(lua_State *L, const char *s, size_t n, const char *secret, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *p = s, *stop = s + n, *hit;
    while ((hit = memmem(p, (size_t)(stop - p), secret, len)) != NULL) {
        luaL_addlstring(&b, p, (size_t)(hit - p));
        luaL_addstring(&b, MASK);
        p = hit + len;
    }
    luaL_addlstring(&b, p, (size_t)(stop - p));
    luaL_pushresult(&b);
}

/* Replaces the configured secrets (the list at index 2) of at least min
 * bytes in the string at index 1, which it replaces.  Stack: [-0, +0]. */
static void mask_configured(lua_State *L, size_t min)
{
    for (lua_Integer i = 1;; i++) {
        lua_rawgeti(L, 2, i);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            return;
        }
        size_t len, n;
        const char *secret = lua_tolstring(L, -1, &len);
        if (secret != NULL && len >= min) {
            const char *s = lua_tolstring(L, 1, &n);
            push_replaced(L, s, n, secret, len);
            lua_replace(L, 1);
        }
        lua_pop(L, 1);
    }
}

/* redact(s [, secrets [, min_bytes]]) -> s.  Stack: [-0, +1]. */
static int core_redact(lua_State *L)
{
    luaL_checkstring(L, 1);          /* a number becomes its string in place */
    lua_Integer min = luaL_optinteger(L, 3, MIN_CONFIGURED);
    luaL_argcheck(L, min >= 1, 3, "min_bytes must be at least 1");
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        mask_configured(L, (size_t)min);
    }
    size_t n, from = 0, start, end;
    const char *s = lua_tolstring(L, 1, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (sc_next_secret(s, n, from, &start, &end)) {
        luaL_addlstring(&b, s + from, start - from);
        luaL_addstring(&b, MASK);
        from = end;
    }
    luaL_addlstring(&b, s + from, n - from);
    luaL_pushresult(&b);
    return 1;
}

void sc_open_redact(lua_State *L)
{
    lua_pushcfunction(L, core_redact);
    lua_setfield(L, -2, "redact");
}
