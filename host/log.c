/*
 * log.c — the access log and error lines, on stderr.
 *
 * Access lines are logfmt, one write(2) each so lines from several worker
 * threads never interleave:
 *   ts=2026-11-28T13:00:00.123Z app=platform worker=1 method=GET path="/x" status=200 ms=1.25 bytes=42
 * (app: APP.lua's base name, so the fake's lines and the platform's differ)
 * With --log-format logfmt or json every line (access and error) is one
 * event with fixed field names: ts, level, app (APP.lua's base name),
 * event ("request", "error"), request_id, then the event's own fields.
 * The query string and headers are never logged: OAuth codes and state
 * travel in the query.  Control characters, quotes and backslashes in the
 * path are escaped.  Error lines (handler tracebacks) pass through the
 * core's redactor (core/redact.c), which masks Stripe secrets and codes a
 * handler may have put in an error message: sk_/rk_ keys, whsec_ secrets,
 * and long ac_/rt_ tokens ("sk_test_[redacted]").
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

double log_now_ms(void)
{
    return sc_monotonic() * 1e3;
}

/* Append s[0..n) to buf at *len as the inside of a quoted logfmt value
 * (json 0) or JSON string (json 1), bounded by cap: quote and backslash
 * escaped, control characters and bytes >= 127 as \xXX or \u00XX (the log
 * is ASCII whatever the path holds). */
static void append_escaped(char *buf, size_t *len, size_t cap, const char *s, size_t n, int json)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && *len + (json ? 7 : 5) < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[(*len)++] = '\\';
            buf[(*len)++] = (char)ch;
        } else if (ch < 32 || ch >= 127) {
            memcpy(buf + *len, json ? "\\u00" : "\\x", json ? 4 : 2);
            *len += json ? 4 : 2;
            buf[(*len)++] = hex[ch >> 4];
            buf[(*len)++] = hex[ch & 15];
        } else {
            buf[(*len)++] = (char)ch;
        }
    }
}

static size_t timestamp(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return n;
}

static int log_format = LOG_TEXT;
static const char *log_app = "stripe-connect";

/* --log-format and the app's name for every line that follows. */
void log_set_format(int format, const char *app)
{
    log_format = format;
    if (app != NULL)
        log_app = app;
}

void log_access(const worker *w, const char *request_id, size_t ridlen, const char *method,
                const char *path, size_t pathlen, int status, double ms, size_t bytes)
{
    if (w->opts->quiet)
        return;
    char line[1024], ts[40];
    timestamp(ts, sizeof ts);
    size_t mlen = strcspn(method, " ");
    int ml = (int)(mlen > 16 ? 16 : mlen);
    int rl = (int)(ridlen > 64 ? 64 : ridlen);
    size_t len;
    if (log_format == LOG_JSON) {
        len = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"info\",\"app\":\"%s\","
                               "\"event\":\"request\",\"request_id\":\"%.*s\",\"worker\":%d,"
                               "\"method\":\"%.*s\",\"path\":\"", ts, log_app, rl, request_id ? request_id : "",
                               w->id, ml, method);
        append_escaped(line, &len, sizeof line - 80, path, pathlen, 1);
        len += (size_t)snprintf(line + len, sizeof line - len, "\",\"status\":%d,\"ms\":%.2f,\"bytes\":%zu}\n",
                                status, ms, bytes);
    } else {
        if (log_format == LOG_LOGFMT)
            len = (size_t)snprintf(line, sizeof line, "ts=%s level=info app=%s event=request request_id=%.*s"
                                   " worker=%d method=%.*s path=\"", ts, log_app, rl,
                                   request_id ? request_id : "", w->id, ml, method);
        else
            len = (size_t)snprintf(line, sizeof line, "ts=%s app=%s worker=%d method=%.*s path=\"", ts, log_app,
                                   w->id, ml, method);
        append_escaped(line, &len, sizeof line - 80, path, pathlen, 0);
        len += (size_t)snprintf(line + len, sizeof line - len, "\" status=%d ms=%.2f bytes=%zu\n",
                                status, ms, bytes);
    }
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

void log_error(const char *fmt, ...)
{
    char raw[8192], line[8192];
    size_t len = (size_t)snprintf(raw, sizeof raw, "%s: ", host_progname);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw + len, sizeof raw - len - 1, fmt, ap);
    va_end(ap);
    len += n < 0 ? 0 : ((size_t)n < sizeof raw - len - 1 ? (size_t)n : sizeof raw - len - 2);
    len = sc_redact(raw, len, line, sizeof line - 1);     /* room for the '\n' */
    if (log_format != LOG_TEXT) {
        /* One structured line: the message without the program name. */
        char out[16384];           /* escapes can grow the line: cut beyond this */
        char ts[40];
        timestamp(ts, sizeof ts);
        size_t skip = strlen(host_progname) + 2, o;
        if (log_format == LOG_JSON) {
            o = (size_t)snprintf(out, 256, "{\"ts\":\"%s\",\"level\":\"error\",\"app\":\"%s\","
                                 "\"event\":\"error\",\"message\":\"", ts, log_app);
            append_escaped(out, &o, sizeof out - 4, line + skip, len - skip, 1);
            o += (size_t)snprintf(out + o, sizeof out - o, "\"}\n");
        } else {
            o = (size_t)snprintf(out, 256, "ts=%s level=error app=%s event=error message=\"", ts, log_app);
            append_escaped(out, &o, sizeof out - 4, line + skip, len - skip, 0);
            o += (size_t)snprintf(out + o, sizeof out - o, "\"\n");
        }
        ssize_t ignored = write(STDERR_FILENO, out, o);
        (void)ignored;
        return;
    }
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
