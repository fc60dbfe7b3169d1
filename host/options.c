/*
 * options.c — the command line of `stripe-connect serve`: defaults, the
 * usage text, and parsing argv into a serve_opts.  Usage errors print the
 * usage and give exit code 2; whole-number options refuse fractions.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

static const char serve_usage[] =
    "usage: stripe-connect serve APP.lua [OPTIONS]\n"
    "\n"
    "Serve the app APP.lua returns (a handler function or a routes table).\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT        address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
    "  --metrics-listen HOST:PORT  serve /metrics (and /healthz, /ready) there only, not on --listen\n"
    "  --workers N               worker threads (default: number of CPUs)\n"
    "  --quiet                   no access log\n"
    "  --log-format FORMAT       text (default), logfmt or json: one event per line, fixed fields\n"
    "  --max-header-size BYTES   request line + headers (default 16384; 431 beyond)\n"
    "  --max-headers N           header count (default 100; 431 beyond)\n"
    "  --max-body-size BYTES     request body (default 1048576; 413 beyond)\n"
    "  --read-timeout SECONDS    to receive a whole request, and idle keep-alive (default 30)\n"
    "  --max-connections N       open connections per worker (default 1024; 503 beyond)\n"
    "  --max-instructions N      Lua VM instructions per request (default 100000000; 500 beyond)\n"
    "  --shutdown-timeout SECONDS  drain deadline on SIGTERM/SIGINT (default 10)\n"
    "  --help                    this help\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: serve: ", host_progname);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", serve_usage);
    return 2;
}

/* A number in [min, max] (a whole one if `whole`).  0 or -1. */
static int parse_number(const char *s, double min, double max, int whole, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= min && v <= max)
        || (whole && v != floor(v)))
        return -1;
    *out = v;
    return 0;
}

/* HOST:PORT (or [v6]:PORT) into host (256 bytes) and *port.  0 or -1. */
static int parse_hostport(const char *s, char *host, int *port_out)
{
    const char *colon = strrchr(s, ':');
    double port;
    if (colon == NULL || colon == s || parse_number(colon + 1, 0, 65535, 1, &port) != 0)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= 256)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port_out = (int)port;
    return 0;
}

static void default_options(serve_opts *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->host, "127.0.0.1");
    o->port = 8080;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->workers = ncpu > 0 ? (int)ncpu : 1;
    o->max_header_size = 16384;
    o->max_headers = 100;
    o->max_body_size = 1024 * 1024;
    o->read_timeout = 30;
    o->max_connections = 1024;
    o->max_instructions = 100000000L;
    o->shutdown_timeout = 10;
    o->metrics_port = -1;
}

/* A numeric option NAME VALUE into opts: 0, 1 (not a numeric option) or
 * -1 (bad value). */
static int numeric_option(const char *name, const char *v, serve_opts *o)
{
    static const struct { const char *name; double min, max; int whole; } num[] = {
        { "--workers", 1, 1024, 1 },             { "--max-header-size", 256, 1 << 24, 1 },
        { "--max-headers", 1, 10000, 1 },        { "--max-body-size", 0, 1u << 31, 1 },
        { "--read-timeout", 0.01, 86400, 0 },    { "--max-connections", 1, 1000000, 1 },
        { "--max-instructions", 1000, 1e15, 1 }, { "--shutdown-timeout", 0, 86400, 0 },
    };
    size_t k = 0, n = sizeof num / sizeof num[0];
    while (k < n && strcmp(num[k].name, name) != 0)
        k++;
    double d;
    if (k == n)
        return 1;
    if (parse_number(v, num[k].min, num[k].max, num[k].whole, &d) != 0)
        return -1;
    switch (k) {
    case 0: o->workers = (int)d; break;
    case 1: o->max_header_size = (size_t)d; break;
    case 2: o->max_headers = (int)d; break;
    case 3: o->max_body_size = (size_t)d; break;
    case 4: o->read_timeout = d; break;
    case 5: o->max_connections = (int)d; break;
    case 6: o->max_instructions = (long)d; break;
    default: o->shutdown_timeout = d; break;
    }
    return 0;
}

/* An option taking a value (argv[i], argv[i + 1]) into opts.  0, or an
 * exit code (usage error) in *code. */
static int valued_option(const char *a, const char *v, serve_opts *o, int *code)
{
    int r;
    if (strcmp(a, "--listen") == 0) {
        if (parse_hostport(v, o->host, &o->port) == 0)
            return 0;
        *code = usage_error("bad --listen '%s' (want HOST:PORT)", v);
    } else if (strcmp(a, "--log-format") == 0) {
        static const char *const names[] = { "text", "logfmt", "json" };
        for (int k = 0; k < 3; k++) {
            if (strcmp(v, names[k]) == 0) {
                o->log_format = k;
                return 0;
            }
        }
        *code = usage_error("bad --log-format '%s' (want text, logfmt or json)", v);
    } else if (strcmp(a, "--metrics-listen") == 0) {
        if (parse_hostport(v, o->metrics_host, &o->metrics_port) == 0)
            return 0;
        *code = usage_error("bad --metrics-listen '%s' (want HOST:PORT)", v);
    } else if ((r = numeric_option(a, v, o)) == 0) {
        return 0;
    } else {
        *code = r > 0 ? usage_error("unknown option '%s'", a) : usage_error("bad value '%s'", v);
    }
    return -1;
}

int options_parse(int argc, char **argv, serve_opts *o, int *code)
{
    default_options(o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(serve_usage, stdout);
            *code = 0;
            return -1;
        }
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (a[0] != '-') {
            if (o->app != NULL) {
                *code = usage_error("unexpected argument '%s'", a);
                return -1;
            }
            o->app = a;
        } else if (i + 1 >= argc) {
            *code = usage_error("option '%s' needs a value", a);
            return -1;
        } else if (valued_option(a, argv[++i], o, code) != 0) {
            return -1;
        }
    }
    if (o->app == NULL) {
        *code = usage_error("missing APP.lua%s", "");
        return -1;
    }
    /* "scripts/platform.lua" -> "platform": what the log lines call the app. */
    const char *base = strrchr(o->app, '/');
    base = base ? base + 1 : o->app;
    size_t bl = strcspn(base, ".");
    if (bl == 0 || bl >= sizeof o->app_buf)
        bl = 0;
    memcpy(o->app_buf, base, bl);
    o->app_buf[bl] = '\0';
    for (size_t k = 0; k < bl; k++) {
        char ch = o->app_buf[k];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            o->app_buf[k] = '_';
    }
    o->app_name = bl ? o->app_buf : "app";
    return 0;
}
