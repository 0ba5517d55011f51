/* OpenSSL 3 implementations of the platform's crypto functions (Linux port and host tests). */
#ifndef ESPADMIN_CRYPTO_OPENSSL_H
#define ESPADMIN_CRYPTO_OPENSSL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *ossl_sha256_begin(void *ctx);
void ossl_sha256_update(void *ctx, void *h, const void *data, size_t len);
void ossl_sha256_finish(void *ctx, void *h, uint8_t out[32]);
bool ossl_ed25519_verify(void *ctx, const uint8_t pub[32], const void *msg, size_t len,
                         const uint8_t sig[64]);
bool ossl_aes_gcm_decrypt(void *ctx, const uint8_t key[32], const uint8_t nonce[12],
                          const void *aad, size_t aad_len, const void *ct, size_t ct_len,
                          const uint8_t tag[16], void *out);
bool ossl_aes_gcm_encrypt(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                          size_t aad_len, const void *pt, size_t pt_len, void *ct,
                          uint8_t tag[16]);
void ossl_random(void *ctx, void *buf, size_t len);

#endif
