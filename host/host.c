/*
 * host.c — the lua_State helpers every entry of the host binary uses
 * (host.h): opening a state the host's way (standard libraries, the core
 * preloaded, the project's Lua path), the protected call with a traceback,
 * and the error report.  `run` (main.c) and each serve worker (apploader.c) open
 * their states with them; they live apart from main.c so that serve's
 * files do not depend on the command line's.
 */
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

int host_msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int host_docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, host_msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

/* Print the error on top as `prog: message` through the log's redactor, so
 * a script that fails with a key, secret or code in its message (Stripe's
 * answer, a config dump) does not print it.  Pops the message. */
void host_report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        log_error("%s", msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
}

/* The repository's lua/ folder the binary was built from (the Makefile
 * defines it for this file), so a build folder outside the repository
 * (`make BUILD=/tmp/x`) still finds its sources. */
#ifndef SC_LUA_SOURCE_DIR
#define SC_LUA_SOURCE_DIR ""
#endif

/* The folder of the running binary (readlink /proc/self/exe, without the
 * file name) into buf: 1, or 0 when it cannot be read. */
int host_exe_dir(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    return 1;
}

const char *host_source_dir(void)
{
    return SC_LUA_SOURCE_DIR;
}

/*
 * Prepend the project's Lua folders to package.path, in this order:
 * <bindir>/../share/lua/5.4 (`make install`'s prefix),
 * <bindir>/../lua (the build tree: build/../lua is the repository's lua/),
 * <bindir>/../share/stripe-connect/lua (an installed prefix), and
 * SC_LUA_SOURCE_DIR (the sources of an out-of-tree build).  Stack: [-0, +0].
 */
static void set_lua_path(lua_State *L)
{
    char exe[PATH_MAX];
    if (!host_exe_dir(exe, sizeof exe))
        return;
    const char *src = host_source_dir();
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L,
        "%s/../share/lua/5.4/?.lua;%s/../share/lua/5.4/?/init.lua;"
        "%s/../lua/?.lua;%s/../lua/?/init.lua;"
        "%s/../share/stripe-connect/lua/?.lua;%s/../share/stripe-connect/lua/?/init.lua;",
        exe, exe, exe, exe, exe, exe);
    if (src[0] != '\0')
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", src, src);
    else
        lua_pushliteral(L, "");
    lua_pushvalue(L, -3);
    lua_concat(L, 3);
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

void host_openlibs(lua_State *L)
{
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_stripe_connect_core);
    lua_setfield(L, -2, "stripe_connect.core");
    lua_pop(L, 2);
    set_lua_path(L);
}

