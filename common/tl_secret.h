/* tl_secret: bearer tokens and signing credentials (docs/SECURITY.md).
 *
 * A bearer token is 256 random bits, shown once; only its SHA-256 is kept
 * (a token is not guessable, so a fast hash is enough). A signing credential
 * is a password the signer types again at each e-signature; it is kept as a
 * slow, salted PBKDF2-HMAC-SHA256 hash, and never in the event log. */
#ifndef TL_SECRET_H
#define TL_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "tl_err.h"

#define TL_TOKEN_PREFIX "tlk_"
#define TL_TOKEN_STRLEN (4 + 64 + 1) /* prefix, 64 hex digits, NUL */
#define TL_SHA256_STRLEN 65
#define TL_PASSWORD_MIN 12            /* bytes */
#define TL_PASSWORD_MAX 256           /* bytes */
#define TL_PASSWORD_ITERATIONS 600000 /* OWASP's figure for PBKDF2-HMAC-SHA256 */
#define TL_PASSWORD_HASH_STRLEN 160

/* A fresh token from the kernel's random source. */
tl_err_t tl_token_new(char out[TL_TOKEN_STRLEN]);
/* Overwrites a secret in memory (not optimised away). */
void tl_secret_wipe(void *p, size_t len);
/* Lowercase hex SHA-256 of len bytes. */
tl_err_t tl_sha256_hex(const void *data, size_t len, char out[TL_SHA256_STRLEN]);
/* SHA-256 over data that arrives in pieces (a release's files as they are
 * written). _final writes the lowercase hex digest and frees h; _destroy
 * (NULL is a no-op) frees it unfinished. */
typedef struct tl_sha256 tl_sha256_t;
tl_err_t tl_sha256_new(tl_sha256_t **out);
tl_err_t tl_sha256_update(tl_sha256_t *h, const void *data, size_t len);
tl_err_t tl_sha256_final(tl_sha256_t *h, char out[TL_SHA256_STRLEN]);
void tl_sha256_destroy(tl_sha256_t *h);
/* HMAC-SHA256 of len bytes under key (the research pseudonyms). */
#define TL_HMAC_LEN 32
tl_err_t tl_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        unsigned char out[TL_HMAC_LEN]);
/* "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>" of password, with a
 * fresh 128-bit salt; iterations 0 means TL_PASSWORD_ITERATIONS.
 * TL_ERR_INVALID when the password is outside TL_PASSWORD_MIN..MAX bytes. */
tl_err_t tl_password_hash(const char *password, unsigned iterations,
                          char out[TL_PASSWORD_HASH_STRLEN]);
/* Whether password matches a tl_password_hash result, compared in constant
 * time; false for anything malformed. */
bool tl_password_verify(const char *password, const char *stored);

/* Ed25519 (the audit archive's checkpoints, docs/SECURITY.md). A key is a
 * PEM file: the private key mode 0600 (refused otherwise: TL_ERR_CONFIG),
 * the public key any mode. */
#define TL_ED25519_SIG_LEN 64
typedef struct tl_sign_key tl_sign_key_t;
/* Makes a new key pair: private PEM to priv_path (mode 0600, not replacing
 * a file), public PEM to pub_path. */
tl_err_t tl_ed25519_keygen(const char *priv_path, const char *pub_path);
tl_err_t tl_ed25519_load(const char *path, bool private_key, tl_sign_key_t **out);
void tl_ed25519_free(tl_sign_key_t *k);
/* The key's id: SHA-256 (hex) of its raw public key. */
tl_err_t tl_ed25519_id(const tl_sign_key_t *k, char out[TL_SHA256_STRLEN]);
tl_err_t tl_ed25519_sign(const tl_sign_key_t *k, const void *data, size_t len,
                         unsigned char sig[TL_ED25519_SIG_LEN]);
bool tl_ed25519_verify(const tl_sign_key_t *k, const void *data, size_t len,
                       const unsigned char *sig, size_t sig_len);

#endif
