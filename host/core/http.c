/*
 * http.c — placeholder for the http area of stripe_connect.core (filled in by its issue).
 */
#include "core.h"

void sc_open_http(lua_State *L)
{
    (void)L;
}
