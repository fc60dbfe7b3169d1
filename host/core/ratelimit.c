/*
 * ratelimit.c — process-wide token buckets, one per key (a client address
 * and the routes it is counted on).
 *
 *   core.rate_take(key, burst, per_minute [, now]) -> true
 *                                                   | false, retry_after (whole seconds ≥ 1)
 *
 * A bucket holds up to `burst` tokens and refills `per_minute` tokens a
 * minute; each call takes one token, or answers false and how long until
 * one is back.  `now` (seconds, any origin) is for specs; the default is
 * CLOCK_MONOTONIC.  Like metrics.c's registry this is process memory on
 * purpose (core.h): the workers of `serve` are threads of one process, each
 * with its own lua_State, and share the buckets.
 *
 * TABLE_SIZE slots, open addressing over PROBES slots.  A key that finds
 * neither its slot nor a free one takes the probed slot used longest ago,
 * so memory stays fixed whatever the number of addresses; a bucket evicted
 * that way starts full again.  One mutex guards the table: a call is a hash,
 * at most PROBES key comparisons and a little arithmetic.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "core.h"

#define TABLE_SIZE  8192
#define PROBES      8
#define MAX_KEY     127

typedef struct bucket {
    unsigned char len;          /* 0: free */
    char key[MAX_KEY];
    double tokens;
    double last;                /* seconds of the last refill */
} bucket;

static bucket table[TABLE_SIZE];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The key's bucket (found, free, or the oldest probed one, reset full). */
static bucket *find(const char *key, size_t len, double burst, double now)
{
    uint32_t h = sc_fnv1a(SC_FNV_BASIS, key, len);
    bucket *oldest = NULL;
    for (int i = 0; i < PROBES; i++) {
        bucket *b = &table[(h + (uint32_t)i) & (TABLE_SIZE - 1)];
        if (b->len == len && memcmp(b->key, key, len) == 0)
            return b;
        if (b->len == 0 || oldest == NULL || b->last < oldest->last)
            oldest = b;
        if (b->len == 0)
            break;
    }
    oldest->len = (unsigned char)len;
    memcpy(oldest->key, key, len);
    oldest->tokens = burst;
    oldest->last = now;
    return oldest;
}

static int rate_take(lua_State *L)
{
    size_t len;
    const char *key = luaL_checklstring(L, 1, &len);
    lua_Number burst = luaL_checknumber(L, 2);
    lua_Number per_minute = luaL_checknumber(L, 3);
    double now = lua_isnoneornil(L, 4) ? sc_monotonic() : (double)luaL_checknumber(L, 4);
    luaL_argcheck(L, len >= 1 && len <= MAX_KEY, 1, "key must be 1 to 127 bytes");
    luaL_argcheck(L, burst >= 1 && burst <= 1e9, 2, "burst must be from 1 to 1e9");
    luaL_argcheck(L, per_minute > 0 && per_minute <= 1e9, 3, "per_minute must be over 0, at most 1e9");
    luaL_argcheck(L, isfinite(now), 4, "now must be a finite number");
    double rate = (double)per_minute / 60.0, wait = 0;
    int ok;
    pthread_mutex_lock(&lock);
    bucket *b = find(key, len, (double)burst, now);
    if (now > b->last) {
        b->tokens += (now - b->last) * rate;
        b->last = now;
    }
    if (b->tokens > (double)burst)
        b->tokens = (double)burst;
    ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    else
        wait = (1.0 - b->tokens) / rate;
    pthread_mutex_unlock(&lock);
    lua_pushboolean(L, ok);
    if (ok)
        return 1;
    lua_pushinteger(L, (lua_Integer)(wait < 1 ? 1 : ceil(wait)));
    return 2;
}

void sc_open_ratelimit(lua_State *L)
{
    lua_pushcfunction(L, rate_take);
    lua_setfield(L, -2, "rate_take");
}
