#include "tinyml_frame.h"

#include <stdio.h>
#include <string.h>

#include "tinyml_codec.h"

void tinyml_frame_init(tinyml_framer *framer) { memset(framer, 0, sizeof *framer); framer->next_seq = 1; }

static void write_crlf(const tinyml_io *io, const char *text, size_t len) {
  char buf[TINYML_FRAME_MAX + 3];
  if (len <= TINYML_FRAME_MAX) {
    memcpy(buf, text, len);
    buf[len] = '\r';
    buf[len + 1] = '\n';
    io->write(io->ctx, buf, len + 2);
  } else {
    io->write(io->ctx, text, len);
    io->write(io->ctx, "\r\n", 2);
  }
}

void tinyml_line(const tinyml_io *io, const char *fmt, ...) {
  char buf[TINYML_FRAME_MAX + 1];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  write_crlf(io, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

uint32_t tinyml_vframe(tinyml_framer *framer, const tinyml_io *io, char kind, const char *fmt, va_list ap) {
  uint32_t seq = framer->next_seq;
  framer->next_seq = seq == 0xffffffffu ? 1u : seq + 1u;
  framer->reply_lines++;
  char line[TINYML_FRAME_MAX + 1];
  int head = snprintf(line, sizeof line, "%c-#%lu-", kind, (unsigned long)seq);
  /* Leave room for "*" and 8 CRC digits; a body that does not fit is cut, the CRC still covers it. */
  size_t room = TINYML_FRAME_MAX - 9 - (size_t)head;
  int body = vsnprintf(line + head, room + 1, fmt, ap);
  size_t len = (size_t)head + (body < 0 ? 0 : ((size_t)body > room ? room : (size_t)body));
  uint32_t crc = tinyml_crc32(0, line, len);
  snprintf(line + len, sizeof line - len, "*%08lx", (unsigned long)crc);
  len += 9;
  size_t slot = seq % TINYML_RESEND_LINES;
  memcpy(framer->held[slot], line, len + 1);
  framer->held_seq[slot] = seq;
  write_crlf(io, line, len);
  return seq;
}

uint32_t tinyml_frame(tinyml_framer *framer, const tinyml_io *io, char kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  uint32_t seq = tinyml_vframe(framer, io, kind, fmt, ap);
  va_end(ap);
  return seq;
}

void tinyml_frame_begin(tinyml_framer *framer) { framer->reply_lines = 0; }

void tinyml_frame_end(tinyml_framer *framer, const tinyml_io *io) {
  tinyml_frame(framer, io, 'm', "end-[%lu]", (unsigned long)framer->reply_lines);
  framer->reply_lines = 0;
}

int tinyml_frame_resend(const tinyml_framer *framer, const tinyml_io *io, uint32_t seq) {
  size_t slot = seq % TINYML_RESEND_LINES;
  if (seq == 0 || framer->held_seq[slot] != seq) return -1;
  write_crlf(io, framer->held[slot], strlen(framer->held[slot]));
  return 0;
}

int tinyml_frame_held(const tinyml_framer *framer, uint32_t *oldest, uint32_t *newest) {
  uint32_t lo = 0, hi = 0;
  for (size_t i = 0; i < TINYML_RESEND_LINES; i++) {
    uint32_t s = framer->held_seq[i];
    if (s == 0) continue;
    if (lo == 0 || s < lo) lo = s;
    if (s > hi) hi = s;
  }
  if (hi == 0) return -1;
  *oldest = lo;
  *newest = hi;
  return 0;
}
