/*
 * core.c — entry point of the C module `stripe_connect.core`, and the few
 * helpers its areas share (core.h: sc_subtable, sc_fnv1a, sc_monotonic).
 *
 * Primitives only, no policy: the Lua library `stripe_connect` requires this
 * module and adds the friendly API.  Built for Lua 5.4 and for LuaJIT 2.1.
 */
#include <time.h>

#include "core.h"

LUALIB_API int luaopen_stripe_connect_core(lua_State *L);

uint32_t sc_fnv1a(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

double sc_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sc_subtable(lua_State *L, int t)
{
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, t);
    }
}

/* Stack: [-0, +1]; returns the module table. */
LUALIB_API int luaopen_stripe_connect_core(lua_State *L)
{
    lua_newtable(L);
    sc_open_crypto(L);
    sc_open_codec(L);
    sc_open_parse(L);
    sc_open_http(L);
    sc_open_webhook(L);
    sc_open_sqlite(L);
    sc_open_pg(L);
    sc_open_metrics(L);
    sc_open_ratelimit(L);
    sc_open_redact(L);
    lua_pushliteral(L, SC_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, LUA_VERSION);
    lua_setfield(L, -2, "lua_version");
    return 1;
}
