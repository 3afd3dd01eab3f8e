/* SHA-256 (FIPS 180-4), small and portable: the model sha256 of tinyml-model without mbedTLS. */
#ifndef TINYML_SHA256_H
#define TINYML_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hash len bytes into 64 lowercase hex digits plus a NUL: tinyml_sha256_hex("abc", 3, out) gives
 * "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad". */
void tinyml_sha256_hex(const void *data, size_t len, char out[65]);

#ifdef __cplusplus
}
#endif
#endif
