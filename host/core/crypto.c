/*
 * crypto.c — HMAC-SHA256, SHA-256, constant-time comparison, CSPRNG bytes,
 * hex, base64 and base64url, and AES-256-GCM (aead_seal/aead_open, for the
 * tokens at rest).  All hashing and encryption go through OpenSSL; nothing
 * here is a hand-written hash or cipher.  Decoders answer `nil, message` on
 * bad input.
 *
 * HMAC keys are few (the state keys, the webhook secrets) and used on every
 * request, while OpenSSL 3's one-shot HMAC() fetches the algorithm from the
 * provider and derives the padded key each call.  So each thread keeps its
 * last few keys' EVP_MAC contexts, already keyed; a call re-initialises one
 * without a key (OpenSSL then reuses the derived state) and hashes the
 * message.  The HMAC algorithm object is fetched once per process.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core.h"

#define SC_RANDOM_MAX 4096

int sc_ct_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    if (alen == 0)
        return 1;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

#define HMAC_CACHE 8                    /* keyed contexts kept per thread */

struct hmac_entry {
    unsigned char *key;
    size_t keylen;
    EVP_MAC_CTX *ctx;
};

struct hmac_cache {
    struct hmac_entry e[HMAC_CACHE];
    int next;                           /* the slot replaced next */
};

static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static pthread_key_t hmac_tls;
static EVP_MAC *hmac_alg;               /* NULL: fall back to HMAC() */

static void hmac_cache_free(void *p)
{
    struct hmac_cache *c = p;
    for (int i = 0; i < HMAC_CACHE; i++) {
        EVP_MAC_CTX_free(c->e[i].ctx);
        OPENSSL_clear_free(c->e[i].key, c->e[i].keylen);
    }
    free(c);
}

static void hmac_setup(void)
{
    if (pthread_key_create(&hmac_tls, hmac_cache_free) == 0)
        hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* Key a fresh context into slot e.  0, or -1 (e left empty). */
static int hmac_fill(struct hmac_entry *e, const void *key, size_t keylen)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC_CTX_free(e->ctx);
    OPENSSL_clear_free(e->key, e->keylen);
    e->ctx = EVP_MAC_CTX_new(hmac_alg);
    e->key = OPENSSL_malloc(keylen);
    e->keylen = keylen;
    if (e->ctx != NULL && e->key != NULL && EVP_MAC_init(e->ctx, key, keylen, params)) {
        memcpy(e->key, key, keylen);
        return 0;
    }
    EVP_MAC_CTX_free(e->ctx);
    OPENSSL_free(e->key);
    e->ctx = NULL;
    e->key = NULL;
    e->keylen = 0;
    return -1;
}

/* This thread's context for key, ready for a message; NULL when the cache
 * cannot be used (then the caller takes the one-shot path). */
static EVP_MAC_CTX *hmac_ctx_for(const void *key, size_t keylen)
{
    pthread_once(&hmac_once, hmac_setup);
    if (hmac_alg == NULL || keylen == 0)
        return NULL;
    struct hmac_cache *c = pthread_getspecific(hmac_tls);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL || pthread_setspecific(hmac_tls, c) != 0) {
            free(c);
            return NULL;
        }
    }
    for (int i = 0; i < HMAC_CACHE; i++) {
        struct hmac_entry *e = &c->e[i];
        if (e->ctx != NULL && e->keylen == keylen && CRYPTO_memcmp(e->key, key, keylen) == 0)
            return EVP_MAC_init(e->ctx, NULL, 0, NULL) ? e->ctx : NULL;
    }
    struct hmac_entry *e = &c->e[c->next];
    c->next = (c->next + 1) % HMAC_CACHE;
    return hmac_fill(e, key, keylen) == 0 ? e->ctx : NULL;
}

int sc_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                   unsigned char out[32])
{
    static const unsigned char empty = 0;
    EVP_MAC_CTX *ctx = hmac_ctx_for(key, keylen);
    if (ctx != NULL) {
        size_t n = 0;
        if (EVP_MAC_update(ctx, msglen ? msg : &empty, msglen) && EVP_MAC_final(ctx, out, &n, 32))
            return n == 32 ? 0 : -1;
    }
    unsigned int outlen = 32;
    /* OpenSSL rejects a NULL key pointer even with length 0. */
    if (HMAC(EVP_sha256(), keylen ? key : &empty, (int)keylen,
             msglen ? msg : &empty, msglen, out, &outlen) == NULL)
        return -1;
    return outlen == 32 ? 0 : -1;
}

void sc_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

/* hmac_sha256(key, message) -> 32 raw bytes.  Stack: [-2, +1]. */
static int crypto_hmac_sha256(lua_State *L)
{
    size_t klen, mlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char mac[32];
    if (sc_hmac_sha256(key, klen, msg, mlen, mac) != 0)
        return luaL_error(L, "hmac_sha256: OpenSSL failure");
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

/* sha256(message) -> 32 raw bytes.  Stack: [-1, +1]. */
static int crypto_sha256(lua_State *L)
{
    size_t mlen;
    const char *msg = luaL_checklstring(L, 1, &mlen);
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(msg, mlen, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return luaL_error(L, "sha256: OpenSSL failure");
    lua_pushlstring(L, (const char *)md, sizeof md);
    return 1;
}

/* equal(a, b) -> boolean, constant time in the content.  Stack: [-2, +1]. */
static int crypto_equal(lua_State *L)
{
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, sc_ct_equal((const unsigned char *)a, alen,
                                   (const unsigned char *)b, blen));
    return 1;
}

/* random_bytes(n) -> n bytes from the OpenSSL CSPRNG; 1 <= n <= 4096. */
static int crypto_random_bytes(lua_State *L)
{
    lua_Number n = luaL_checknumber(L, 1);
    unsigned char buf[SC_RANDOM_MAX];
    /* Range first (NaN fails it too): casting an out-of-range or NaN
     * number to int is undefined behaviour. */
    if (!(n >= 1 && n <= SC_RANDOM_MAX) || n != (lua_Number)(int)n)
        return luaL_argerror(L, 1, "expected an integer from 1 to 4096");
    if (RAND_bytes(buf, (int)n) != 1)
        return luaL_error(L, "random_bytes: CSPRNG failure");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    OPENSSL_cleanse(buf, (size_t)n);
    return 1;
}

/* hex_encode(bytes) -> lowercase hex.  Stack: [-1, +1]. */
static int crypto_hex_encode(lua_State *L)
{
    size_t n;
    const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 2 * n);
    sc_hex_encode(in, n, out);
    luaL_pushresultsize(&b, 2 * n);
    return 1;
}

int sc_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* hex_decode(hex) -> bytes | nil, message.  Stack: [-1, +1|2]. */
static int crypto_hex_decode(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    if (n % 2 != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "hex_decode: odd length");
        return 2;
    }
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n / 2);
    for (size_t i = 0; i < n; i += 2) {
        int hi = sc_hex_digit((unsigned char)in[i]), lo = sc_hex_digit((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "hex_decode: invalid character at position %d", (int)(hi < 0 ? i + 1 : i + 2));
            return 2;
        }
        out[i / 2] = (char)(hi << 4 | lo);
    }
    luaL_pushresultsize(&b, n / 2);
    return 1;
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Pushes the base64 of the string at index 1 in `alphabet`, '='-padded to a
 * multiple of 4 when `pad`.  Stack: [-0, +1]. */
static int b64_encode(lua_State *L, const char *alphabet, int pad)
{
    size_t n;
    const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &n);
    size_t outlen = (n + 2) / 3 * 4, o = 0, i = 0;
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, outlen);
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        if (pad) { out[o++] = '='; out[o++] = '='; }
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        if (pad) out[o++] = '=';
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

/* base64url_encode(bytes) -> text without padding (RFC 4648 §5). */
static int crypto_base64url_encode(lua_State *L)
{
    return b64_encode(L, b64url, 0);
}

/* base64_encode(bytes) -> standard base64 with '=' padding (RFC 4648 §4),
 * as HTTP Basic authentication needs. */
static int crypto_base64_encode(lua_State *L)
{
    return b64_encode(L, b64std, 1);
}

/* Value of one base64 digit in `alphabet` (which differs only in 62, 63). */
static int b64_value(int c, const char *alphabet)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == alphabet[62]) return 62;
    if (c == alphabet[63]) return 63;
    return -1;
}

/*
 * Decodes in[0..n) (no padding left) in `alphabet`; pushes the bytes, or
 * nil and "<name>: <reason>".  The unused low bits of the last digit must be
 * zero, so every value has one encoding.  Stack: [-0, +1|2].
 */
static int b64_decode(lua_State *L, const char *in, size_t n, const char *alphabet,
                      const char *name)
{
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n / 4 * 3 + 2);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i], alphabet);
        if (v < 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "%s: invalid character at position %d", name, (int)i + 1);
            return 2;
        }
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: non-canonical trailing bits", name);
        return 2;
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

/*
 * base64_decode(text) -> bytes | nil, message.  Strict standard base64
 * (RFC 4648 §4): length a multiple of 4, '=' only as final padding, no
 * whitespace.
 */
static int crypto_base64_decode(lua_State *L)
{
    size_t n, padding = 0;
    const char *in = luaL_checklstring(L, 1, &n);
    if (n % 4 != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "base64_decode: invalid length");
        return 2;
    }
    while (padding < 2 && n > padding && in[n - 1 - padding] == '=')
        padding++;
    return b64_decode(L, in, n - padding, b64std, "base64_decode");
}

/*
 * base64url_decode(text) -> bytes | nil, message.  Strict: unpadded
 * base64url only, no '+', '/', '=' or whitespace.
 */
static int crypto_base64url_decode(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    if (n % 4 == 1) {
        lua_pushnil(L);
        lua_pushliteral(L, "base64url_decode: invalid length");
        return 2;
    }
    return b64_decode(L, in, n, b64url, "base64url_decode");
}

#define GCM_IV  12
#define GCM_TAG 16
#define GCM_MAX (64 * 1024 * 1024)

/* The arguments of aead_seal and aead_open (fn: which, for the messages):
 * key (32 bytes), input, aad. */
typedef struct aead_args {
    const unsigned char *key, *in, *aad;
    size_t n, alen;
} aead_args;

static aead_args check_aead_args(lua_State *L, const char *fn)
{
    aead_args a;
    size_t klen;
    a.key = (const unsigned char *)luaL_checklstring(L, 1, &klen);
    a.in = (const unsigned char *)luaL_checklstring(L, 2, &a.n);
    a.aad = (const unsigned char *)luaL_checklstring(L, 3, &a.alen);
    if (klen != 32)
        luaL_argerror(L, 1, lua_pushfstring(L, "%s: the key must be 32 bytes", fn));
    return a;
}

/* AES-256-GCM of in[0..n) into out under key and iv, with aad: sealing
 * (enc 1) writes the tag, opening (enc 0) checks it.  1, or 0 on failure
 * (a tag that does not match included). */
static int gcm(int enc, const aead_args *a, const unsigned char *iv, const unsigned char *in,
               size_t n, unsigned char *out, unsigned char *tag)
{
    int len = 0;
    EVP_CIPHER_CTX *evp = EVP_CIPHER_CTX_new();
    int ok = evp != NULL
        && EVP_CipherInit_ex(evp, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1
        && EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_GCM_SET_IVLEN, GCM_IV, NULL) == 1
        && EVP_CipherInit_ex(evp, NULL, NULL, a->key, iv, enc) == 1
        && (a->alen == 0 || EVP_CipherUpdate(evp, NULL, &len, a->aad, (int)a->alen) == 1)
        && EVP_CipherUpdate(evp, out, &len, in, (int)n) == 1
        && (enc || EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_GCM_SET_TAG, GCM_TAG, tag) == 1)
        && EVP_CipherFinal_ex(evp, out + len, &len) == 1
        && (!enc || EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_GCM_GET_TAG, GCM_TAG, tag) == 1);
    EVP_CIPHER_CTX_free(evp);
    return ok;
}

/*
 * aead_seal(key, plaintext, aad) -> iv .. ciphertext .. tag: AES-256-GCM
 * (OpenSSL EVP) under a 32-byte key, a fresh random 96-bit IV each call and
 * a 128-bit tag over the ciphertext and aad.
 */
static int crypto_aead_seal(lua_State *L)
{
    aead_args a = check_aead_args(L, "aead_seal");
    size_t n = a.n;
    luaL_argcheck(L, n <= GCM_MAX && a.alen <= GCM_MAX, 2, "aead_seal: at most 64 MiB");
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, GCM_IV + n + GCM_TAG);
    if (RAND_bytes(out, GCM_IV) != 1 || !gcm(1, &a, out, a.in, n, out + GCM_IV, out + GCM_IV + n))
        return luaL_error(L, "aead_seal: OpenSSL failed");
    luaL_pushresultsize(&b, GCM_IV + n + GCM_TAG);
    return 1;
}

/*
 * aead_open(key, sealed, aad) -> plaintext | nil, message: the inverse of
 * aead_seal; a wrong key, wrong aad or any changed byte fails the tag.
 */
static int crypto_aead_open(lua_State *L)
{
    aead_args a = check_aead_args(L, "aead_open");
    luaL_argcheck(L, a.alen <= GCM_MAX, 3, "aead_open: at most 64 MiB");
    if (a.n < GCM_IV + GCM_TAG || a.n > GCM_MAX) {
        lua_pushnil(L);
        lua_pushliteral(L, "aead_open: not a sealed value");
        return 2;
    }
    size_t m = a.n - GCM_IV - GCM_TAG;
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, m + 1);
    if (!gcm(0, &a, a.in, a.in + GCM_IV, m, out, (unsigned char *)(a.in + GCM_IV + m))) {
        OPENSSL_cleanse(out, m);
        luaL_pushresultsize(&b, 0);
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushliteral(L, "aead_open: the key, the associated data or the value is not the one sealed");
        return 2;
    }
    luaL_pushresultsize(&b, m);
    return 1;
}

static const luaL_Reg crypto_funcs[] = {
    {"aead_open",        crypto_aead_open},
    {"aead_seal",        crypto_aead_seal},
    {"base64_decode",    crypto_base64_decode},
    {"base64_encode",    crypto_base64_encode},
    {"base64url_decode", crypto_base64url_decode},
    {"base64url_encode", crypto_base64url_encode},
    {"equal",            crypto_equal},
    {"hex_decode",       crypto_hex_decode},
    {"hex_encode",       crypto_hex_encode},
    {"hmac_sha256",      crypto_hmac_sha256},
    {"random_bytes",     crypto_random_bytes},
    {"sha256",           crypto_sha256},
    {NULL, NULL}
};

void sc_open_crypto(lua_State *L)
{
    luaL_setfuncs(L, crypto_funcs, 0);
}
