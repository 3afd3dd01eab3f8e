/* The protocol's error codes (PROTOCOL.md section 2): one list, its names, and nothing else. The Python
 * mirror is src/pytest_tinyml/board/status.py; tests/test_firmware_status.py checks both against PROTOCOL.md. */
#ifndef TINYML_STATUS_H
#define TINYML_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(IDENTIFIER, "name"): the name is what an error line carries before its ':'. Append only. */
#define TINYML_STATUS_LIST(X)                \
  X(UNKNOWN_COMMAND, "unknown-command")      \
  X(TOO_LONG, "too-long")                    \
  X(BAD_ARGUMENT, "bad-argument")            \
  X(ODD_HEX, "odd-hex")                      \
  X(BAD_HEX, "bad-hex")                      \
  X(NO_UPLOAD, "no-upload")                  \
  X(BAD_OFFSET, "bad-offset")                \
  X(PAST_END, "past-end")                    \
  X(CHUNK_CRC, "chunk-crc")                  \
  X(CRC_MISMATCH, "crc-mismatch")            \
  X(MODEL_TOO_BIG, "model-too-big")          \
  X(NO_ROOM, "no-room")                      \
  X(BAD_MODEL, "bad-model")                  \
  X(UNSUPPORTED_OP, "unsupported-op")        \
  X(ARENA_TOO_SMALL, "arena-too-small")      \
  X(NO_MODEL, "no-model")                    \
  X(INPUT_SIZE, "input-size")                \
  X(NO_RESULTS, "no-results")                \
  X(TOO_MANY_RUNS, "too-many-runs")          \
  X(INVOKE_FAILED, "invoke-failed")          \
  X(RESEND_GONE, "resend-gone")              \
  X(UNSUPPORTED, "unsupported")              \
  X(ENGINE, "engine")

typedef enum tinyml_status {
  TINYML_OK = 0,
#define TINYML_STATUS_ENUM(id, name) TINYML_ST_##id,
  TINYML_STATUS_LIST(TINYML_STATUS_ENUM)
#undef TINYML_STATUS_ENUM
  TINYML_STATUS_COUNT
} tinyml_status;

/* "bad-argument" for TINYML_ST_BAD_ARGUMENT; "engine" for anything out of range. */
const char *tinyml_status_name(tinyml_status status);
/* The status of a name ("arena-too-small" -> TINYML_ST_ARENA_TOO_SMALL), or TINYML_OK when it is not one. */
tinyml_status tinyml_status_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
