/*
 * main.c — the host binary `stripe-connect`, shaped like Lua's own lua.c.
 *
 *   stripe-connect run SCRIPT.lua [ARGS…]   run an ad hoc script
 *   stripe-connect serve APP.lua [OPTIONS]  serve an app (serve.c)
 *   stripe-connect version | help [COMMAND|settings]
 *
 * `main` creates the state, runs everything inside one protected call,
 * reports `stripe-connect: message` with a traceback, and picks the exit
 * code.  The core is preloaded and the project's Lua modules are found from
 * the binary's own location (build tree or install prefix), so no
 * environment variable is needed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "core/core.h"

const char *host_progname = "stripe-connect";

static const char usage_text[] =
    "usage: stripe-connect COMMAND [ARGS…]\n"
    "\n"
    "commands:\n"
    "  run SCRIPT.lua [ARGS…]     run a Lua script with the core preloaded (- : stdin)\n"
    "  serve APP.lua [OPTIONS]    serve a Lua app over HTTP (see `serve --help`)\n"
    "  doctor [--json] [--offline]  check the platform's settings for known traps\n"
    "  version                    print the version\n"
    "  help [COMMAND|settings]    this help, a command's, or every environment setting\n";

static const char run_usage[] =
    "usage: stripe-connect run SCRIPT.lua [ARGS…]\n"
    "\n"
    "Run a Lua 5.4 script with the core (stripe_connect.core) preloaded and the\n"
    "project's modules on package.path; the global `arg` holds SCRIPT.lua as\n"
    "arg[0] and ARGS as arg[1..]; `-` reads the script from standard input.\n"
    "An error prints `stripe-connect: message` with a traceback (keys and codes\n"
    "masked) and exits 1; os.exit(n) sets the exit status.\n";

/* A bare script name ("platform": no '/', no ".lua", no such file here) is
 * one of the project's scripts: <bindir>/../share/stripe-connect/scripts
 * (installed), <bindir>/../scripts (the build tree), then the repository's
 * scripts/ the binary was built from.  Answers buf, or `name` unchanged. */
static const char *resolve_script(const char *name, char *buf, size_t size)
{
    if (strchr(name, '/') != NULL || strstr(name, ".lua") != NULL || strcmp(name, "-") == 0
        || access(name, F_OK) == 0)
        return name;
    char exe[PATH_MAX];
    if (!host_exe_dir(exe, sizeof exe))
        return name;
    const char *src = host_source_dir();
    const char *dirs[3][2] = { { exe, "/../share/stripe-connect/scripts" }, { exe, "/../scripts" },
                               { src, "/../scripts" } };
    for (int i = 0; i < 3; i++) {
        if (dirs[i][0][0] == '\0')
            continue;
        int w = snprintf(buf, size, "%s%s/%s.lua", dirs[i][0], dirs[i][1], name);
        if (w > 0 && (size_t)w < size && access(buf, R_OK) == 0)
            return buf;
    }
    return name;
}

/* serve's APP.lua: the first argument that is not an option nor an option's
 * value (every option but --quiet and --help takes one), resolved. */
static void resolve_serve_app(int argc, char **argv, char *buf, size_t size)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            continue;
        if (a[0] == '-') {
            i++;
            continue;
        }
        argv[i] = (char *)resolve_script(a, buf, size);
        return;
    }
}

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
    char resolved[PATH_MAX];
    const char *script = resolve_script(argv[2], resolved, sizeof resolved);
    argv[2] = (char *)script;
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

static int run_main(int argc, char **argv);

/* `help settings`: stripe_connect.settings' text, in a state of its own. */
static int help_settings(void)
{
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return 1;
    host_openlibs(L);
    int ok = luaL_dostring(L, "io.write(require('stripe_connect.settings').text())") == LUA_OK;
    if (!ok)
        host_report(L, LUA_ERRRUN);
    lua_close(L);
    return ok ? 0 : 1;
}

/* `help [TOPIC]`. */
static int help_main(int argc, char **argv)
{
    const char *topic = argc >= 3 ? argv[2] : NULL;
    if (topic == NULL || strcmp(topic, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(topic, "run") == 0) {
        fputs(run_usage, stdout);
        return 0;
    }
    if (strcmp(topic, "serve") == 0) {
        char *serve_help[] = { argv[0], "serve", "--help", NULL };
        return host_serve_main(3, serve_help);
    }
    if (strcmp(topic, "doctor") == 0) {
        char *doctor_help[] = { argv[0], "run", "doctor", "--help", NULL };
        return run_main(4, doctor_help);
    }
    if (strcmp(topic, "version") == 0) {
        fputs("usage: stripe-connect version\n\nPrint the version and the Lua release.\n", stdout);
        return 0;
    }
    if (strcmp(topic, "settings") == 0)
        return help_settings();
    fprintf(stderr, "%s: help: unknown topic '%s'\n%s", host_progname, topic, usage_text);
    return 2;
}

static int run_main(int argc, char **argv)
{
    if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        fputs(run_usage, stdout);
        return 0;
    }
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
    if (argc >= 2 && strcmp(argv[1], "help") == 0)
        return help_main(argc, argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0
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
    if (strcmp(argv[1], "doctor") == 0) {
        /* `doctor ARGS` is `run doctor ARGS` (scripts/doctor.lua). */
        char **args = calloc((size_t)argc + 2, sizeof *args);
        if (args == NULL)
            return 1;
        args[0] = argv[0];
        args[1] = "run";
        args[2] = "doctor";
        for (int i = 2; i < argc; i++)
            args[i + 1] = argv[i];
        int rc = run_main(argc + 1, args);
        free(args);
        return rc;
    }
    if (strcmp(argv[1], "serve") == 0) {
        static char app[PATH_MAX];
        resolve_serve_app(argc, argv, app, sizeof app);
        return host_serve_main(argc, argv);
    }
    fprintf(stderr, "%s: unknown command '%s'\n%s", host_progname, argv[1], usage_text);
    return 2;
}
