#include "tinyml_codec.h"

/* Nibble table: 64 bytes of flash instead of 1 KB, fast enough for models of a few hundred KB. */
static const uint32_t kCrcNibble[16] = {
    0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
    0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
    0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu};

uint32_t tinyml_crc32(uint32_t crc, const void *data, size_t len) {
  const uint8_t *p = (const uint8_t *)data;
  crc = ~crc;
  for (size_t i = 0; i < len; i++) {
    crc ^= p[i];
    crc = (crc >> 4) ^ kCrcNibble[crc & 0x0fu];
    crc = (crc >> 4) ^ kCrcNibble[crc & 0x0fu];
  }
  return ~crc;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int tinyml_hex_decode(const char *hex, size_t n_digits, uint8_t *out, size_t *bad_pos) {
  /* Report a bad character before an odd count: "zz1" is more usefully "bad hex 'z'" than "odd". */
  for (size_t i = 0; i < n_digits; i++) {
    if (hex_value(hex[i]) < 0) {
      if (bad_pos) *bad_pos = i;
      return TINYML_HEX_BAD;
    }
  }
  if (n_digits % 2 != 0) return TINYML_HEX_ODD;
  for (size_t i = 0; i < n_digits; i += 2) {
    out[i / 2] = (uint8_t)((hex_value(hex[i]) << 4) | hex_value(hex[i + 1]));
  }
  return TINYML_HEX_OK;
}

void tinyml_hex_encode(const uint8_t *data, size_t len, char *out) {
  static const char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0x0f];
  }
  out[2 * len] = '\0';
}

int tinyml_parse_u32(const char *text, uint32_t *value) {
  uint64_t v = 0;
  if (text == NULL || *text == '\0') return -1;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10u + (uint64_t)(*p - '0');
    if (v > 0xffffffffu) return -1;
  }
  *value = (uint32_t)v;
  return 0;
}

int tinyml_parse_hex32(const char *text, uint32_t *value) {
  uint32_t v = 0;
  size_t n = 0;
  if (text == NULL || *text == '\0') return -1;
  for (const char *p = text; *p; p++, n++) {
    int d = hex_value(*p);
    if (d < 0 || n >= 8) return -1;
    v = (v << 4) | (uint32_t)d;
  }
  *value = v;
  return 0;
}

void tinyml_u64_to_dec(uint64_t value, char *out) {
  char digits[21];
  size_t n = 0;
  do {
    digits[n++] = (char)('0' + value % 10u);
    value /= 10u;
  } while (value != 0);
  for (size_t i = 0; i < n; i++) out[i] = digits[n - 1 - i];
  out[n] = '\0';
}
