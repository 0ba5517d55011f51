/* The two libsodium declarations the port uses, exactly as libsodium declares them
 * (sodium/core.h, sodium/crypto_sign_ed25519.h), for check.sh: the espressif/libsodium
 * component is not part of the ESP-IDF repository. */
#pragma once
int sodium_init(void) __attribute__((warn_unused_result));
int crypto_sign_ed25519_verify_detached(const unsigned char *sig, const unsigned char *m,
                                        unsigned long long mlen, const unsigned char *pk)
    __attribute__((warn_unused_result));
