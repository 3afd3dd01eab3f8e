#include "tinyml_status.h"

#include <string.h>

static const char *const kNames[TINYML_STATUS_COUNT] = {
    "ok",
#define TINYML_STATUS_NAME(id, name) name,
    TINYML_STATUS_LIST(TINYML_STATUS_NAME)
#undef TINYML_STATUS_NAME
};

const char *tinyml_status_name(tinyml_status status) {
  if ((int)status <= 0 || (int)status >= TINYML_STATUS_COUNT) return "engine";
  return kNames[status];
}

tinyml_status tinyml_status_from_name(const char *name) {
  for (int i = 1; i < TINYML_STATUS_COUNT; i++) {
    if (strcmp(kNames[i], name) == 0) return (tinyml_status)i;
  }
  return TINYML_OK;
}
