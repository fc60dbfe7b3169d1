/*
 * log.c — the access log and error lines, on stderr.
 *
 * Access lines are logfmt, one write(2) each so lines from several worker
 * threads never interleave:
 *   ts=2026-11-28T13:00:00.123Z worker=1 method=GET path="/x" status=200 ms=1.25 bytes=42
 * The query string and headers are never logged: OAuth codes and state
 * travel in the query.  Control characters, quotes and backslashes in the
 * path are escaped.  Error lines (handler tracebacks) pass through a
 * redactor that masks Stripe secrets and codes a handler may have put in an
 * error message: sk_/rk_ keys, whsec_ secrets, and long ac_/rt_ tokens.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

double log_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Append s[0..n) to buf at *len with logfmt escaping, bounded by cap. */
static void append_escaped(char *buf, size_t *len, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && *len + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[(*len)++] = '\\';
            buf[(*len)++] = (char)ch;
        } else if (ch < 32 || ch >= 127) {
            buf[(*len)++] = '\\';
            buf[(*len)++] = 'x';
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

void log_access(const worker *w, const char *method, const char *path, size_t pathlen,
                int status, double ms, size_t bytes)
{
    if (w->opts->quiet)
        return;
    char line[1024];
    size_t len = (size_t)snprintf(line, sizeof line, "ts=");
    len += timestamp(line + len, sizeof line - len);
    size_t mlen = strcspn(method, " ");
    len += (size_t)snprintf(line + len, sizeof line - len, " worker=%d method=%.*s path=\"",
                            w->id, (int)(mlen > 16 ? 16 : mlen), method);
    append_escaped(line, &len, sizeof line - 80, path, pathlen);
    len += (size_t)snprintf(line + len, sizeof line - len, "\" status=%d ms=%.2f bytes=%zu\n",
                            status, ms, bytes);
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

static int is_alnum(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Mask what follows a secret's prefix in s[0..n), in place. */
static void redact(char *s, size_t n)
{
    static const struct { const char *prefix; size_t min; } secrets[] = {
        { "sk_live_", 1 }, { "sk_test_", 1 }, { "rk_live_", 1 }, { "rk_test_", 1 },
        { "whsec_", 1 }, { "ac_", 16 }, { "rt_", 16 },
    };
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (is_alnum(s[i - 1]) || s[i - 1] == '_'))
            continue;
        for (size_t k = 0; k < sizeof secrets / sizeof secrets[0]; k++) {
            size_t pl = strlen(secrets[k].prefix);
            if (i + pl > n || memcmp(s + i, secrets[k].prefix, pl) != 0)
                continue;
            size_t j = i + pl;
            while (j < n && (is_alnum(s[j]) || s[j] == '_'))
                j++;
            if (j - i - pl >= secrets[k].min)
                memset(s + i + pl, '*', j - i - pl);
            i = j;
            break;
        }
    }
}

void log_error(const char *fmt, ...)
{
    char line[8192];
    size_t len = (size_t)snprintf(line, sizeof line, "%s: ", host_progname);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, sizeof line - len - 1, fmt, ap);
    va_end(ap);
    len += n < 0 ? 0 : ((size_t)n < sizeof line - len - 1 ? (size_t)n : sizeof line - len - 2);
    redact(line, len);
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
