#include "tinyml_arena.h"

size_t tinyml_arena_fit(size_t configured, size_t largest_free) {
  if (largest_free >= configured + TINYML_ARENA_MARGIN) return configured;
  if (largest_free <= TINYML_ARENA_MARGIN) return 0;
  size_t room = (largest_free - TINYML_ARENA_MARGIN) & ~(size_t)15;
  return room < configured ? room : configured;
}
