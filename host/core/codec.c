/*
 * codec.c — placeholder for the codec area of stripe_connect.core (filled in by its issue).
 */
#include "core.h"

void sc_open_codec(lua_State *L)
{
    (void)L;
}
