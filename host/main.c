/*
 * main.c — the host binary `stripe-connect`, shaped like Lua's own lua.c.
 *
 *   stripe-connect run SCRIPT.lua [ARGS…]   run an ad hoc script
 *   stripe-connect serve APP.lua [OPTIONS]  serve an app (serve.c)
 *   stripe-connect version | help
 *
 * `main` creates the state, runs everything inside one protected call,
 * reports `stripe-connect: message` with a traceback, and picks the exit
 * code.  The core is preloaded and the project's Lua modules are found from
 * the binary's own location (build tree or install prefix), so no
 * environment variable is needed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "core/core.h"

const char *host_progname = "stripe-connect";

static const char usage_text[] =
    "usage: stripe-connect COMMAND [ARGS…]\n"
    "\n"
    "commands:\n"
    "  run SCRIPT.lua [ARGS…]     run a Lua script with the core preloaded (- : stdin)\n"
    "  serve APP.lua [OPTIONS]    serve a Lua app over HTTP (see `serve --help`)\n"
    "  version                    print the version\n"
    "  help                       print this help\n";

/* Build the global `arg` like lua.c: arg[0] = script, arg[1..] = its args. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script)
{
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* Protected body of `run`: argv[2] is the script, "-" for standard input
 * (as lua.c).  Stack: [-0, +1] (status). */
static int pmain_run(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    host_openlibs(L);
    create_arg_table(L, argc, argv, 2);
    const char *script = argv[2];
    int status = luaL_loadfile(L, strcmp(script, "-") == 0 ? NULL : script);
    if (status == LUA_OK) {
        int nargs = argc - 3;
        luaL_checkstack(L, nargs, "too many arguments to script");
        for (int i = 3; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = host_docall(L, nargs, 0);
    }
    host_report(L, status);
    lua_pushboolean(L, status == LUA_OK);
    return 1;
}

static int run_main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "%s: run: missing SCRIPT.lua\n%s", host_progname, usage_text);
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create state: not enough memory\n", host_progname);
        return 1;
    }
    lua_pushcfunction(L, pmain_run);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = status == LUA_OK && lua_toboolean(L, -1);
    host_report(L, status);
    lua_close(L);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0
        || strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("stripe-connect %s (%s)\n", SC_VERSION, LUA_RELEASE);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        return run_main(argc, argv);
    if (strcmp(argv[1], "serve") == 0)
        return host_serve_main(argc, argv);
    fprintf(stderr, "%s: unknown command '%s'\n%s", host_progname, argv[1], usage_text);
    return 2;
}
