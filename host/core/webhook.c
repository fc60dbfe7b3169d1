/*
 * webhook.c — placeholder for the webhook area of stripe_connect.core (filled in by its issue).
 */
#include "core.h"

void sc_open_webhook(lua_State *L)
{
    (void)L;
}
