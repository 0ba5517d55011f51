#include "crypto_openssl.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

void *ossl_sha256_begin(void *ctx)
{
    (void)ctx;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return NULL;
    }
    return md;
}

void ossl_sha256_update(void *ctx, void *h, const void *data, size_t len)
{
    (void)ctx;
    if (h) {
        EVP_DigestUpdate(h, data, len);
    }
}

void ossl_sha256_finish(void *ctx, void *h, uint8_t out[32])
{
    (void)ctx;
    if (h == NULL) {
        return;
    }
    uint8_t tmp[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h, tmp, &n);
    if (out) {
        memcpy(out, tmp, 32);
    }
    EVP_MD_CTX_free(h);
}

bool ossl_ed25519_verify(void *ctx, const uint8_t pub[32], const void *msg, size_t len,
                         const uint8_t sig[64])
{
    (void)ctx;
    bool ok = false;
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (key && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1) {
        ok = EVP_DigestVerify(md, sig, 64, msg, len) == 1;
    }
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return ok;
}

static bool gcm(bool enc, const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                size_t aad_len, const void *in, size_t in_len, void *out, uint8_t tag[16])
{
    bool ok = false;
    int n = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL || in_len > 0x7fffffff || aad_len > 0x7fffffff) {
        goto done;
    }
    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1) {
        goto done;
    }
    if (aad_len && EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) != 1) {
        goto done;
    }
    if (in_len && EVP_CipherUpdate(c, out, &n, in, (int)in_len) != 1) {
        goto done;
    }
    if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1) {
        goto done;
    }
    if (EVP_CipherFinal_ex(c, (uint8_t *)out + n, &n) != 1) {
        goto done;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
        goto done;
    }
    ok = true;
done:
    EVP_CIPHER_CTX_free(c);
    return ok;
}

bool ossl_aes_gcm_decrypt(void *ctx, const uint8_t key[32], const uint8_t nonce[12],
                          const void *aad, size_t aad_len, const void *ct, size_t ct_len,
                          const uint8_t tag[16], void *out)
{
    (void)ctx;
    uint8_t t[16];
    memcpy(t, tag, 16);
    return gcm(false, key, nonce, aad, aad_len, ct, ct_len, out, t);
}

bool ossl_aes_gcm_encrypt(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                          size_t aad_len, const void *pt, size_t pt_len, void *ct,
                          uint8_t tag[16])
{
    return gcm(true, key, nonce, aad, aad_len, pt, pt_len, ct, tag);
}

void ossl_random(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    if (RAND_bytes(buf, (int)len) != 1) {
        memset(buf, 0, len);
    }
}
