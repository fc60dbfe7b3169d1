/*
 * host.h — what the host binary's files share: opening a lua_State the way
 * the host does (standard libraries, the project's Lua path, the core
 * preloaded) and the one protected-call helper every entry into Lua uses.
 */
#ifndef SC_HOST_H
#define SC_HOST_H

#include "compat.h"

extern const char *host_progname;

/* Open libraries, set package.path to find the project's Lua modules, and
 * register the core in package.preload.  Stack: [-0, +0]. */
void host_openlibs(lua_State *L);

/* Call the function below narg arguments in protected mode with a traceback
 * handler (lua.c's docall).  On error the message+traceback is left on top. */
int host_docall(lua_State *L, int narg, int nres);

/* Report the message on top of the stack as `prog: message` on stderr. */
void host_report(lua_State *L, int status);

/* The running binary's folder into buf (1), or 0 when unknown. */
int host_exe_dir(char *buf, size_t size);

/* The repository's lua/ folder the binary was built from ("" if unknown). */
const char *host_source_dir(void);

/* Message handler that appends a traceback (for lua_pcall). */
int host_msghandler(lua_State *L);

/* `prog: message` on stderr in one write, with Stripe keys, webhook secrets
 * and long ac_/rt_ codes masked (log.c). */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* `stripe-connect serve …`; returns the process exit code. */
int host_serve_main(int argc, char **argv);

LUALIB_API int luaopen_stripe_connect_core(lua_State *L);

#endif
