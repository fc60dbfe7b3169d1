/*
 * compat.h — the one place where Lua 5.4 and LuaJIT 2.1 (Lua 5.1 API) differ.
 *
 * The core module is compiled twice from the same sources: against Lua 5.4
 * (the host binary, plain lua5.4, LuaRocks) and against LuaJIT 2.1 (the ABI
 * that OpenResty / lua-nginx-module loads).  Code outside this header uses the
 * 5.4 names; this header supplies them on LuaJIT.  LuaJIT 2.1 already has
 * luaL_setfuncs, luaL_testudata and luaL_newlib; it lacks integers,
 * lua_rawlen and yieldable C continuations (the host, 5.4 only, uses those).
 */
#ifndef SC_COMPAT_H
#define SC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if LUA_VERSION_NUM < 502
#ifndef LUA_OK
#define LUA_OK 0
#endif
#define lua_rawlen(L, i) lua_objlen((L), (i))
/* 5.1 has no integer subtype: integers travel as lua_Number (exact to 2^53).
 * A number counts as an integer when it is whole and within +-2^53; the range
 * is checked before the cast, since casting an out-of-range, infinite or NaN
 * double to long long is undefined behaviour. */
static inline int sc_number_is_integer(lua_Number x)
{
    return x >= -9007199254740992.0 && x <= 9007199254740992.0
        && x == (lua_Number)(long long)x;
}
#define sc_pushinteger(L, n) lua_pushnumber((L), (lua_Number)(n))
#define sc_isinteger(L, i) (lua_type((L), (i)) == LUA_TNUMBER && \
    sc_number_is_integer(lua_tonumber((L), (i))))
/* Only for a value sc_isinteger accepted. */
#define sc_tointeger(L, i) ((long long)lua_tonumber((L), (i)))

/* Sized buffers: a userdata of the final size sits on the stack until the
 * result is pushed (5.1's luaL_Buffer cannot preallocate).  Nothing else may
 * be pushed between the two calls except on error paths that return. */
static inline char *luaL_buffinitsize(lua_State *L, luaL_Buffer *B, size_t sz)
{
    B->L = L;
    return (char *)lua_newuserdata(L, sz ? sz : 1);
}

static inline void luaL_pushresultsize(luaL_Buffer *B, size_t sz)
{
    lua_State *L = B->L;
    lua_pushlstring(L, (const char *)lua_touserdata(L, -1), sz);
    lua_remove(L, -2);
}
#else
#define sc_pushinteger(L, n) lua_pushinteger((L), (lua_Integer)(n))
#define sc_isinteger(L, i) lua_isinteger((L), (i))
#define sc_tointeger(L, i) ((long long)lua_tointeger((L), (i)))
#endif

#endif /* SC_COMPAT_H */
