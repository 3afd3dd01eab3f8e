/* What the TFLM engine needs from the board, implemented in app_main.cc with ESP-IDF (kept out of
 * tflm_engine.cc so that file only depends on TFLite Micro). */
#ifndef TINYML_BOARD_PLATFORM_H
#define TINYML_BOARD_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Microseconds since boot (esp_timer_get_time). */
uint64_t board_now_us(void);
/* 16-byte aligned memory, internal RAM first, then PSRAM when present. NULL when neither has room; then
 * *largest is the largest block either could give. */
void *board_alloc(size_t bytes, size_t *largest);
void board_free(void *ptr);
/* Largest block board_alloc could give now. */
size_t board_largest_free(void);
/* Largest block board_arena_alloc could give now (internal RAM, or PSRAM with the fallback). */
size_t board_arena_largest_free(void);
/* The tensor arena: internal RAM, or PSRAM as the fallback (CONFIG_TINYML_ARENA_PSRAM_FALLBACK).
 * *where is "internal" or "psram". */
uint8_t *board_arena_alloc(size_t bytes, const char **where);

#ifdef __cplusplus
}
#endif
#endif
