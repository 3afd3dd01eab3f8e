/* Output lines of the protocol: plain lines and framed lines (m-#<seq>-<body>*<crc32>), with the ring of
 * recent framed lines that tinyml-resend re-sends byte for byte. */
#ifndef TINYML_FRAME_H
#define TINYML_FRAME_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TINYML_FRAME_MAX 256    /* bytes of one framed line without CRLF */
#define TINYML_RESEND_LINES 48  /* framed lines held for tinyml-resend */

/* Byte I/O of the serial link. read_byte blocks and returns 0..255, or -1 at end of input. Every framed
 * line is written in one write call, with its CRLF. */
typedef struct tinyml_io {
  void *ctx;
  int (*read_byte)(void *ctx);
  void (*write)(void *ctx, const char *data, size_t len);
} tinyml_io;

typedef struct tinyml_framer {
  uint32_t next_seq;    /* seq of the next framed line; starts at 1 */
  uint32_t reply_lines; /* framed lines sent in the current reply, for end-[n] */
  uint32_t held_seq[TINYML_RESEND_LINES];
  char held[TINYML_RESEND_LINES][TINYML_FRAME_MAX + 1];
} tinyml_framer;

void tinyml_frame_init(tinyml_framer *framer);
/* A plain line (CRLF added): tinyml_line(io, "m-lap-us-%lu", t). */
void tinyml_line(const tinyml_io *io, const char *fmt, ...);
/* A framed line of kind 'm' or 'e' whose body is fmt: tinyml_frame(f, io, 'm', "arena-[used=%u]", n)
 * sends "m-#7-arena-[used=2944]*<crc>". Returns its seq. */
uint32_t tinyml_frame(tinyml_framer *framer, const tinyml_io *io, char kind, const char *fmt, ...);
uint32_t tinyml_vframe(tinyml_framer *framer, const tinyml_io *io, char kind, const char *fmt, va_list ap);
/* Start a reply (resets the count) and end it with the framed "end-[n]" line. */
void tinyml_frame_begin(tinyml_framer *framer);
void tinyml_frame_end(tinyml_framer *framer, const tinyml_io *io);
/* Re-send framed line seq if still held; returns 0, or -1 when gone or never sent. */
int tinyml_frame_resend(const tinyml_framer *framer, const tinyml_io *io, uint32_t seq);
/* Oldest and newest seq held; returns 0, or -1 when nothing was sent yet. */
int tinyml_frame_held(const tinyml_framer *framer, uint32_t *oldest, uint32_t *newest);

#ifdef __cplusplus
}
#endif
#endif
