/*
 * metrics.c — process-wide counters and latency histograms, and a clock.
 *
 *   core.metrics_add(series [, n])            counter `series` += n (default 1)
 *   core.metrics_observe(name, labels, seconds)  one observation into the
 *                                             histogram name{labels}
 *   core.metrics_snapshot()                   -> { counters, histograms, bounds }
 *   core.monotonic()                          -> seconds on CLOCK_MONOTONIC
 *
 * One registry per process, on purpose (the one exception to "no C globals"
 * in core.h): the host's workers are threads of one process, each with its
 * own lua_State, and the core is linked into the host once, so every worker
 * adds to the same numbers and any worker reads the totals.  Loaded as a
 * shared module by plain Lua or LuaJIT, the registry is per process as well.
 *
 * A series is created on first use and lives until the process ends; at
 * most MAX_SERIES of them (counters and histograms together, MAX_HISTOGRAMS
 * histograms), beyond which the call raises.  Creating one takes a mutex;
 * finding one reads an insert-only hash table without locking, and values
 * are atomics, so adding never blocks another worker.
 *
 * A counter series is `name` or `name{labels}` (a Prometheus metric name,
 * labels without control characters), a histogram a metric name plus a
 * labels string such as `route="/connect"` (may be empty).  Histograms have
 * the fixed upper bounds BOUNDS (seconds); the snapshot's bucket counts are
 * cumulative, as Prometheus exposes them, and `count` is the +Inf bucket.
 *
 * snapshot() -> {
 *   counters   = { ["series"] = n, … },
 *   histograms = { ["name"] = { ["labels"] = { buckets = { n≤b1, n≤b2, … },
 *                                              sum = seconds, count = n } } },
 *   bounds     = { b1, b2, … },
 * }
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core.h"

#define MAX_SERIES      1024
#define MAX_HISTOGRAMS  64
#define MAX_KEY         255          /* bytes of a series, or name + labels */
#define TABLE_SIZE      2048         /* hash slots: a power of two > 2 * MAX_SERIES */
#define MAX_ADD         9007199254740992.0   /* 2^53: exact as a LuaJIT number */
#define MAX_SECONDS     1e6

enum { KIND_COUNTER, KIND_HISTOGRAM };

static const double BOUNDS[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
#define NBOUNDS (sizeof BOUNDS / sizeof BOUNDS[0])

typedef struct histogram {
    atomic_ullong sum_ns;
    atomic_ullong buckets[NBOUNDS + 1];   /* per bucket, not cumulative; last: +Inf */
} histogram;

typedef struct entry {
    uint32_t hash;
    int kind;
    size_t len;                  /* key bytes; for a histogram name '\0' labels */
    size_t name_len;             /* histogram: bytes of the name */
    char key[MAX_KEY + 1];
    atomic_ullong value;         /* counter */
    histogram *hist;             /* histogram */
} entry;

static entry pool[MAX_SERIES];
static histogram hist_pool[MAX_HISTOGRAMS];
static _Atomic(entry *) table[TABLE_SIZE];
static atomic_int nentries;      /* pool[0 .. nentries) are complete */
static int nhistograms;          /* guarded by lock */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* FNV-1a over the key and its kind. */
static uint32_t hash_key(int kind, const char *key, size_t len)
{
    return sc_fnv1a(SC_FNV_BASIS ^ (uint32_t)kind, key, len);
}

/* The entry for (kind, key), or NULL; safe without the lock. */
static entry *find(int kind, const char *key, size_t len, uint32_t h)
{
    for (size_t i = h & (TABLE_SIZE - 1);; i = (i + 1) & (TABLE_SIZE - 1)) {
        entry *e = atomic_load_explicit(&table[i], memory_order_acquire);
        if (e == NULL)
            return NULL;
        if (e->hash == h && e->kind == kind && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    }
}

/* Creates the entry under the lock (or finds the one another thread made);
 * NULL and *why when a cap is reached. */
static entry *create(int kind, const char *key, size_t len, size_t name_len, uint32_t h,
                     const char **why)
{
    pthread_mutex_lock(&lock);
    entry *e = find(kind, key, len, h);
    int n = atomic_load_explicit(&nentries, memory_order_relaxed);
    if (e == NULL && n >= MAX_SERIES) {
        *why = "too many metric series (at most 1024 per process)";
    } else if (e == NULL && kind == KIND_HISTOGRAM && nhistograms >= MAX_HISTOGRAMS) {
        *why = "too many histograms (at most 64 per process)";
    } else if (e == NULL) {
        e = &pool[n];
        e->hash = h;
        e->kind = kind;
        e->len = len;
        e->name_len = name_len;
        memcpy(e->key, key, len);
        e->key[len] = '\0';
        if (kind == KIND_HISTOGRAM)
            e->hist = &hist_pool[nhistograms++];
        atomic_store_explicit(&nentries, n + 1, memory_order_release);
        size_t i = h & (TABLE_SIZE - 1);
        while (atomic_load_explicit(&table[i], memory_order_relaxed) != NULL)
            i = (i + 1) & (TABLE_SIZE - 1);
        atomic_store_explicit(&table[i], e, memory_order_release);
    }
    pthread_mutex_unlock(&lock);
    return e;
}

/* The entry for (kind, key), created on first use; raises at a cap. */
static entry *lookup(lua_State *L, int kind, const char *key, size_t len, size_t name_len)
{
    uint32_t h = hash_key(kind, key, len);
    entry *e = find(kind, key, len, h);
    const char *why = NULL;
    if (e == NULL)
        e = create(kind, key, len, name_len, h, &why);
    if (e == NULL)
        luaL_error(L, "metrics: %s", why);
    return e;
}

/* Length of the metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) at the start of s. */
static size_t name_span(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            break;
        i++;
    }
    return i;
}

/* 1 when s has no control characters (labels end up in the exposition). */
static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* metrics_add(series [, n]): n a whole number from 0 to 2^53 (default 1).
 * Stack: [-2, +0]. */
static int metrics_add(lua_State *L)
{
    size_t len;
    luaL_checktype(L, 1, LUA_TSTRING);
    const char *series = lua_tolstring(L, 1, &len);
    size_t nl = name_span(series, len);
    if (len > MAX_KEY || nl == 0 || !printable(series, len)
        || (nl < len && (series[nl] != '{' || series[len - 1] != '}')))
        return luaL_error(L, "metrics_add: series must be name or name{labels} "
                          "(at most %d bytes, no control characters)", MAX_KEY);
    unsigned long long n = 1;
    if (!lua_isnoneornil(L, 2)) {
        lua_Number x = luaL_checknumber(L, 2);
        if (!sc_isinteger(L, 2) || x < 0 || x > MAX_ADD)
            return luaL_error(L, "metrics_add: n must be a whole number from 0 to 2^53");
        n = (unsigned long long)x;
    }
    entry *e = lookup(L, KIND_COUNTER, series, len, nl);
    atomic_fetch_add_explicit(&e->value, n, memory_order_relaxed);
    return 0;
}

/* metrics_observe(name, labels, seconds): seconds from 0 to 1e6.
 * Stack: [-3, +0]. */
static int metrics_observe(lua_State *L)
{
    size_t nlen, llen;
    luaL_checktype(L, 1, LUA_TSTRING);
    luaL_checktype(L, 2, LUA_TSTRING);
    const char *name = lua_tolstring(L, 1, &nlen);
    const char *labels = lua_tolstring(L, 2, &llen);
    lua_Number s = luaL_checknumber(L, 3);
    if (nlen == 0 || name_span(name, nlen) != nlen)
        return luaL_error(L, "metrics_observe: name must be a metric name");
    if (nlen + 1 + llen > MAX_KEY || !printable(labels, llen))
        return luaL_error(L, "metrics_observe: labels must be printable and name plus labels "
                          "at most %d bytes", MAX_KEY - 1);
    if (!(s >= 0 && s <= MAX_SECONDS))
        return luaL_error(L, "metrics_observe: seconds must be a number from 0 to 1e6");
    char key[MAX_KEY + 1];
    memcpy(key, name, nlen);
    key[nlen] = '\0';
    memcpy(key + nlen + 1, labels, llen);
    entry *e = lookup(L, KIND_HISTOGRAM, key, nlen + 1 + llen, nlen);
    size_t b = 0;
    while (b < NBOUNDS && s > BOUNDS[b])
        b++;
    atomic_fetch_add_explicit(&e->hist->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->hist->sum_ns, (unsigned long long)llround(s * 1e9),
                              memory_order_relaxed);
    return 0;
}

/* Pushes { buckets = {cumulative…}, sum =, count = } of h.  Stack: [-0, +1]. */
static void push_histogram(lua_State *L, histogram *h)
{
    unsigned long long total = 0;
    lua_createtable(L, 0, 3);
    lua_createtable(L, (int)NBOUNDS, 0);
    for (size_t b = 0; b <= NBOUNDS; b++) {
        total += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        if (b < NBOUNDS) {
            sc_pushinteger(L, total);
            lua_rawseti(L, -2, (int)b + 1);
        }
    }
    lua_setfield(L, -2, "buckets");
    lua_pushnumber(L, (lua_Number)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    lua_setfield(L, -2, "sum");
    sc_pushinteger(L, total);
    lua_setfield(L, -2, "count");
}

/* Adds entry e to the histograms table at t (by name, then labels). */
static void add_histogram(lua_State *L, int t, entry *e)
{
    lua_pushlstring(L, e->key, e->name_len);
    sc_subtable(L, t);                            /* name, its table */
    lua_pushlstring(L, e->key + e->name_len + 1, e->len - e->name_len - 1);
    push_histogram(L, e->hist);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

/* metrics_snapshot() -> { counters, histograms, bounds }.  Stack: [-0, +1]. */
static int metrics_snapshot(lua_State *L)
{
    int n = atomic_load_explicit(&nentries, memory_order_acquire);
    lua_createtable(L, 0, 3);
    lua_newtable(L);
    int counters = lua_gettop(L);
    lua_newtable(L);
    int hists = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        entry *e = &pool[i];
        if (e->kind == KIND_COUNTER) {
            lua_pushlstring(L, e->key, e->len);
            sc_pushinteger(L, atomic_load_explicit(&e->value, memory_order_relaxed));
            lua_rawset(L, counters);
        } else {
            add_histogram(L, hists, e);
        }
    }
    lua_setfield(L, -3, "histograms");
    lua_setfield(L, -2, "counters");
    lua_createtable(L, (int)NBOUNDS, 0);
    for (size_t b = 0; b < NBOUNDS; b++) {
        lua_pushnumber(L, BOUNDS[b]);
        lua_rawseti(L, -2, (int)b + 1);
    }
    lua_setfield(L, -2, "bounds");
    return 1;
}

/* monotonic() -> seconds (a float) since an arbitrary point; never goes
 * back.  Stack: [-0, +1]. */
static int metrics_monotonic(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)sc_monotonic());
    return 1;
}

static const luaL_Reg metrics_funcs[] = {
    {"metrics_add",      metrics_add},
    {"metrics_observe",  metrics_observe},
    {"metrics_snapshot", metrics_snapshot},
    {"monotonic",        metrics_monotonic},
    {NULL, NULL}
};

void sc_open_metrics(lua_State *L)
{
    luaL_setfuncs(L, metrics_funcs, 0);
}
