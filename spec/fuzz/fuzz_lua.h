/*
 * fuzz_lua.h — the shared part of the fuzz targets that reach the core
 * through its Lua functions (doc/testing.md: Fuzzing).
 *
 * A target defines FUZZ_CHECK, a Lua chunk run as function(core, data) for
 * every input, then includes this file.  The chunk calls the C functions
 * under test with `data` and checks what they promise (round trips,
 * canonical encodings, no raise on any input); a broken promise is
 * error("FUZZ: …"), which aborts the process, so libFuzzer records the
 * input as a crash.  Other errors are ignored: a function may raise on
 * misuse, which the chunk does not do on purpose.  Lua libraries resolve
 * from FUZZ_LUA_DIR (the repository's lua/, set by the Makefile).
 */
#ifndef FUZZ_LUA_H
#define FUZZ_LUA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_stripe_connect_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *fuzz_L;
static int fuzz_check_ref;

static void fuzz_die(const char *what, lua_State *L)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    abort();
}

static void fuzz_setup(void)
{
    lua_State *L = luaL_newstate();
    if (L == NULL)
        abort();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, FUZZ_LUA_DIR "/?.lua;" FUZZ_LUA_DIR "/?/init.lua");
    lua_setfield(L, -2, "path");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_stripe_connect_core);
    lua_setfield(L, -2, "stripe_connect.core");
    lua_pop(L, 2);
    if (luaL_loadbuffer(L, FUZZ_CHECK, sizeof FUZZ_CHECK - 1, "=check") != LUA_OK)
        fuzz_die("the check does not compile", L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "stripe_connect.core");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        fuzz_die("require core", L);
    /* The chunk returns the per-input function (it may set up first). */
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        fuzz_die("the check's setup", L);
    fuzz_check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    fuzz_L = L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_L == NULL)
        fuzz_setup();
    lua_State *L = fuzz_L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_check_ref);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg != NULL && strstr(msg, "FUZZ:") != NULL)
            fuzz_die("a promise broke", L);
        lua_pop(L, 1);
    }
    return 0;
}

#endif /* FUZZ_LUA_H */
