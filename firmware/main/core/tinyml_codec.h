/* CRC-32 (IEEE, as zlib.crc32), hex encoding and strict number parsing for the serial protocol. */
#ifndef TINYML_CODEC_H
#define TINYML_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CRC-32/ISO-HDLC. Start with crc = 0, feed pieces in order: tinyml_crc32(0, "123456789", 9) == 0xcbf43926. */
uint32_t tinyml_crc32(uint32_t crc, const void *data, size_t len);

#define TINYML_HEX_OK 0
#define TINYML_HEX_ODD (-1)
#define TINYML_HEX_BAD (-2)
/* Decode n_digits hex digits into out (n_digits / 2 bytes). Returns TINYML_HEX_OK, TINYML_HEX_ODD, or
 * TINYML_HEX_BAD with *bad_pos = index of the first bad character. Nothing is promised about out on error. */
int tinyml_hex_decode(const char *hex, size_t n_digits, uint8_t *out, size_t *bad_pos);
/* Encode len bytes as 2*len lowercase digits plus a NUL. */
void tinyml_hex_encode(const uint8_t *data, size_t len, char *out);

/* Decimal text of a u64 (out holds at least 21 bytes): printf's %llu is missing from newlib-nano. */
void tinyml_u64_to_dec(uint64_t value, char *out);

/* Whole-string decimal u32 ("0".."4294967295"); returns 0 on success. */
int tinyml_parse_u32(const char *text, uint32_t *value);
/* Whole-string hex u32 of 1 to 8 digits, any case; returns 0 on success. */
int tinyml_parse_hex32(const char *text, uint32_t *value);

#ifdef __cplusplus
}
#endif
#endif
