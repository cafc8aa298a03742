#include "tl_secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SALT_LEN 16
#define KEY_LEN 32
#define ITERATIONS_MAX 10000000u

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool unhex(const char *s, size_t len, unsigned char *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                         : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                                : 16;
            if (d == 16)
                return false;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

static bool random_bytes(unsigned char *b, size_t n)
{
    return getrandom(b, n, 0) == (ssize_t)n;
}

tl_err_t tl_token_new(char out[TL_TOKEN_STRLEN])
{
    unsigned char b[32];
    if (!random_bytes(b, sizeof b))
        return TL_ERR_INTERNAL;
    memcpy(out, TL_TOKEN_PREFIX, 4);
    hex(b, sizeof b, out + 4);
    OPENSSL_cleanse(b, sizeof b);
    return TL_OK;
}

void tl_secret_wipe(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}

tl_err_t tl_sha256_hex(const void *data, size_t len, char out[TL_SHA256_STRLEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return TL_ERR_INTERNAL;
    hex(md, 32, out);
    return TL_OK;
}

struct tl_sha256 {
    EVP_MD_CTX *md;
};

tl_err_t tl_sha256_new(tl_sha256_t **out)
{
    tl_sha256_t *h = calloc(1, sizeof *h);
    if (h && (h->md = EVP_MD_CTX_new()) && EVP_DigestInit_ex(h->md, EVP_sha256(), NULL)) {
        *out = h;
        return TL_OK;
    }
    tl_sha256_destroy(h);
    *out = NULL;
    return TL_ERR_NOMEM;
}

tl_err_t tl_sha256_update(tl_sha256_t *h, const void *data, size_t len)
{
    return !len || EVP_DigestUpdate(h->md, data, len) ? TL_OK : TL_ERR_INTERNAL;
}

tl_err_t tl_sha256_final(tl_sha256_t *h, char out[TL_SHA256_STRLEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    tl_err_t err = EVP_DigestFinal_ex(h->md, md, &mdlen) && mdlen == 32 ? TL_OK : TL_ERR_INTERNAL;
    if (!err)
        hex(md, 32, out);
    tl_sha256_destroy(h);
    return err;
}

void tl_sha256_destroy(tl_sha256_t *h)
{
    if (h)
        EVP_MD_CTX_free(h->md);
    free(h);
}

static bool derive(const char *password, const unsigned char *salt, unsigned iterations,
                   unsigned char key[KEY_LEN])
{
    return PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, SALT_LEN, (int)iterations,
                             EVP_sha256(), KEY_LEN, key) == 1;
}

tl_err_t tl_password_hash(const char *password, unsigned iterations,
                          char out[TL_PASSWORD_HASH_STRLEN])
{
    size_t len = password ? strlen(password) : 0;
    if (len < TL_PASSWORD_MIN || len > TL_PASSWORD_MAX || iterations > ITERATIONS_MAX)
        return TL_ERR_INVALID;
    if (!iterations)
        iterations = TL_PASSWORD_ITERATIONS;
    unsigned char salt[SALT_LEN], key[KEY_LEN];
    char salt_hex[2 * SALT_LEN + 1], key_hex[2 * KEY_LEN + 1];
    if (!random_bytes(salt, sizeof salt) || !derive(password, salt, iterations, key))
        return TL_ERR_INTERNAL;
    hex(salt, sizeof salt, salt_hex);
    hex(key, sizeof key, key_hex);
    OPENSSL_cleanse(key, sizeof key);
    snprintf(out, TL_PASSWORD_HASH_STRLEN, "pbkdf2-sha256$%u$%s$%s", iterations, salt_hex, key_hex);
    return TL_OK;
}

bool tl_password_verify(const char *password, const char *stored)
{
    static const char scheme[] = "pbkdf2-sha256$";
    if (!password || !stored || strncmp(stored, scheme, sizeof scheme - 1))
        return false;
    size_t plen = strlen(password);
    if (plen < TL_PASSWORD_MIN || plen > TL_PASSWORD_MAX)
        return false;
    char *end = NULL;
    unsigned long iterations = strtoul(stored + sizeof scheme - 1, &end, 10);
    unsigned char salt[SALT_LEN], want[KEY_LEN], got[KEY_LEN];
    if (!iterations || iterations > ITERATIONS_MAX || *end != '$' ||
        strlen(end + 1) != 2 * SALT_LEN + 1 + 2 * KEY_LEN || end[1 + 2 * SALT_LEN] != '$' ||
        !unhex(end + 1, SALT_LEN, salt) || !unhex(end + 2 + 2 * SALT_LEN, KEY_LEN, want) ||
        !derive(password, salt, (unsigned)iterations, got))
        return false;
    bool ok = CRYPTO_memcmp(got, want, KEY_LEN) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

tl_err_t tl_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        unsigned char out[TL_HMAC_LEN])
{
    unsigned int n = 0;
    if (key_len > INT32_MAX ||
        !HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) || n != TL_HMAC_LEN)
        return TL_ERR_INTERNAL;
    return TL_OK;
}

/* ---- Ed25519 ---- */

struct tl_sign_key {
    EVP_PKEY *pkey;
};

static tl_err_t write_pem(const char *path, EVP_PKEY *k, bool private_key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, private_key ? 0600 : 0644);
    if (fd < 0)
        return TL_ERR_CONFIG;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return TL_ERR_NOMEM;
    }
    int ok = private_key ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_PUBKEY(f, k);
    return fclose(f) || !ok ? TL_ERR_INTERNAL : TL_OK;
}

tl_err_t tl_ed25519_keygen(const char *priv_path, const char *pub_path)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k)
        return TL_ERR_INTERNAL;
    tl_err_t err = write_pem(priv_path, k, true);
    if (!err)
        err = write_pem(pub_path, k, false);
    EVP_PKEY_free(k);
    return err;
}

tl_err_t tl_ed25519_load(const char *path, bool private_key, tl_sign_key_t **out)
{
    struct stat st;
    *out = NULL;
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f)
        return TL_ERR_CONFIG;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) ||
        (private_key && (st.st_mode & (S_IRWXG | S_IRWXO)))) {
        fclose(f);
        return TL_ERR_CONFIG;
    }
    EVP_PKEY *k = private_key ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
                              : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    tl_sign_key_t *key = k && EVP_PKEY_is_a(k, "ED25519") ? calloc(1, sizeof *key) : NULL;
    if (!key) {
        EVP_PKEY_free(k);
        return TL_ERR_CONFIG;
    }
    key->pkey = k;
    *out = key;
    return TL_OK;
}

void tl_ed25519_free(tl_sign_key_t *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

tl_err_t tl_ed25519_id(const tl_sign_key_t *k, char out[TL_SHA256_STRLEN])
{
    unsigned char raw[32];
    size_t len = sizeof raw;
    if (!EVP_PKEY_get_raw_public_key(k->pkey, raw, &len))
        return TL_ERR_INTERNAL;
    return tl_sha256_hex(raw, len, out);
}

tl_err_t tl_ed25519_sign(const tl_sign_key_t *k, const void *data, size_t len,
                         unsigned char sig[TL_ED25519_SIG_LEN])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t n = TL_ED25519_SIG_LEN;
    bool ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, k->pkey) == 1 &&
              EVP_DigestSign(c, sig, &n, data, len) == 1 && n == TL_ED25519_SIG_LEN;
    EVP_MD_CTX_free(c);
    return ok ? TL_OK : TL_ERR_INTERNAL;
}

bool tl_ed25519_verify(const tl_sign_key_t *k, const void *data, size_t len,
                       const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = c && sig_len == TL_ED25519_SIG_LEN &&
              EVP_DigestVerifyInit(c, NULL, NULL, NULL, k->pkey) == 1 &&
              EVP_DigestVerify(c, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}
