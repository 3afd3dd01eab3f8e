// Thin ESP-IDF glue of tinyml-bench: console I/O (UART or USB-Serial-JTAG), memory, timing, board facts.
// The protocol lives in core/ (portable, tested on the host); the model runtime in tflm_engine.cc.
#include <cstdio>
#include <cstring>

#include "board_platform.h"
#include "esp_app_desc.h"
#include "esp_chip_info.h"
#include "esp_clk_tree.h"
#include "esp_err.h"
#include "esp_flash.h"
#include "esp_heap_caps.h"
#include "esp_idf_version.h"
#include "esp_mac.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "model_data.h"
#include "sdkconfig.h"
#include "tflm_engine.h"
#include "tinyml_arena.h"
#include "tinyml_core.h"
#if CONFIG_SPIRAM
#include "esp_psram.h"
#endif
// stdio goes through the installed driver (D2 of issue 13): the VFS helpers moved to the driver components in
// ESP-IDF 5.3 (the old names are deprecated there and gone in 6.0).
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
#include "driver/usb_serial_jtag.h"
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 3, 0)
#include "driver/usb_serial_jtag_vfs.h"
#else
#include "esp_vfs_dev.h"
#endif
#else
#include "driver/uart.h"
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 3, 0)
#include "driver/uart_vfs.h"
#else
#include "esp_vfs_dev.h"
#endif
#endif

#ifndef TINYML_TFLM_VERSION
#define TINYML_TFLM_VERSION "unknown"
#endif
#ifndef TINYML_ESP_NN_VERSION
#define TINYML_ESP_NN_VERSION "unknown"
#endif
#ifndef TINYML_CFLAGS
#define TINYML_CFLAGS "unknown"
#endif

namespace {

constexpr uint32_t kInternal = MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT;

// --- console I/O ----------------------------------------------------------------------------------------------

// A USB-Serial-JTAG write waits at most this long for the host to take bytes; after one timeout, writes are
// tried without waiting until the host reads again (as ESP-IDF's own VFS driver does), so a closed port
// never blocks the board.
constexpr TickType_t kUsbWriteWait = pdMS_TO_TICKS(50);
bool g_usb_write_stalled = false;
bool g_driver_ok = false;  // false: the driver did not install; stdio's default console is used instead

// The protocol and stdio (ESP_LOG, TFLite Micro's DebugLog on stderr) share one driver, so their bytes never
// interleave inside a line: without the VFS switch stdio writes the TX FIFO directly while the driver drains
// its ring buffer. Returns the first failing call's name, or nullptr.
const char* ConsoleInit(esp_err_t* rc) {
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
  usb_serial_jtag_driver_config_t config = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
  config.rx_buffer_size = 4096;  // a 480-byte chunk command is ~1 KB of hex
  config.tx_buffer_size = 4096;
  if ((*rc = usb_serial_jtag_driver_install(&config)) != ESP_OK) return "usb_serial_jtag_driver_install";
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 3, 0)
  usb_serial_jtag_vfs_use_driver();
#else
  esp_vfs_usb_serial_jtag_use_driver();
#endif
#else
  const uart_port_t port = static_cast<uart_port_t>(CONFIG_ESP_CONSOLE_UART_NUM);
  if ((*rc = uart_driver_install(port, 4096, 4096, 0, nullptr, 0)) != ESP_OK) return "uart_driver_install";
  if ((*rc = uart_set_baudrate(port, CONFIG_TINYML_BAUD)) != ESP_OK) return "uart_set_baudrate";
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 3, 0)
  uart_vfs_dev_use_driver(CONFIG_ESP_CONSOLE_UART_NUM);
#else
  esp_vfs_dev_uart_use_driver(CONFIG_ESP_CONSOLE_UART_NUM);
#endif
#endif
  *rc = ESP_OK;
  g_driver_ok = true;
  return nullptr;
}

// Bytes come in blocks (a whole command is usually in the driver's buffer): one driver call per block, not
// per byte, keeps up with 921600 baud.
int ReadByte(void*) {
  static uint8_t block[256];
  static int pos = 0, len = 0;
  while (!g_driver_ok) {  // no driver: the console's own (polling) VFS
    int c = fgetc(stdin);
    if (c != EOF) return c;
    clearerr(stdin);
    vTaskDelay(1);
  }
  while (pos == len) {
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
    // Returns what the ring buffer holds (up to the size) as soon as anything is there.
    len = usb_serial_jtag_read_bytes(block, sizeof block, portMAX_DELAY);
#else
    // uart_read_bytes waits for the full length: ask for what is buffered, or block for one byte.
    const uart_port_t port = static_cast<uart_port_t>(CONFIG_ESP_CONSOLE_UART_NUM);
    size_t buffered = 0;
    uart_get_buffered_data_len(port, &buffered);
    size_t want = buffered == 0 ? 1 : (buffered < sizeof block ? buffered : sizeof block);
    len = uart_read_bytes(port, block, want, portMAX_DELAY);
#endif
    pos = 0;
    if (len < 0) len = 0;
  }
  return block[pos++];
}

void Write(void*, const char* data, size_t len) {
  fflush(stdout);  // a pending log line goes out whole, before the protocol line
  fflush(stderr);
  if (!g_driver_ok) {
    fwrite(data, 1, len, stdout);
    fflush(stdout);
    return;
  }
  while (len > 0) {
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
    int n = usb_serial_jtag_write_bytes(data, len, g_usb_write_stalled ? 0 : kUsbWriteWait);
    g_usb_write_stalled = n <= 0;  // nobody reads: drop the rest of this line, do not wait again
#else
    int n = uart_write_bytes(static_cast<uart_port_t>(CONFIG_ESP_CONSOLE_UART_NUM), data, len);
#endif
    if (n <= 0) return;
    data += n;
    len -= static_cast<size_t>(n);
  }
}

// --- engine functions that are the board's, not TFLM's ---------------------------------------------------------

void* Alloc(void*, size_t bytes, size_t* available) { return board_alloc(bytes, available); }
void Release(void*, void* ptr) { board_free(ptr); }

const uint8_t* Builtin(void*, size_t* len) {
  *len = g_model_len;
  return g_model;
}

int Heap(void*, size_t* free_bytes, size_t* min_free, size_t* largest, tinyml_error*) {
  *free_bytes = heap_caps_get_free_size(MALLOC_CAP_8BIT);
  *min_free = heap_caps_get_minimum_free_size(MALLOC_CAP_8BIT);
  *largest = heap_caps_get_largest_free_block(MALLOC_CAP_8BIT);
  return 0;
}

uint64_t Now(void*) { return board_now_us(); }

const char* ResetReason() {
  // Indexed by esp_reset_reason_t, whose order ESP-IDF only appends to.
  static const char* const kNames[] = {"unknown",  "poweron",      "external",      "software",  "panic",
                                       "int-watchdog", "task-watchdog", "watchdog", "deepsleep", "brownout",
                                       "sdio",     "usb",          "jtag",          "efuse",     "pwr-glitch",
                                       "cpu-lockup"};
  unsigned reason = static_cast<unsigned>(esp_reset_reason());
  return reason < sizeof kNames / sizeof kNames[0] ? kNames[reason] : "unknown";
}

const char* ChipName(esp_chip_model_t model) {
  switch (model) {
    case CHIP_ESP32: return "esp32";
    case CHIP_ESP32S2: return "esp32s2";
    case CHIP_ESP32S3: return "esp32s3";
    case CHIP_ESP32C3: return "esp32c3";
    case CHIP_ESP32C2: return "esp32c2";
    case CHIP_ESP32C6: return "esp32c6";
    case CHIP_ESP32H2: return "esp32h2";
    default: return CONFIG_IDF_TARGET;
  }
}

const char* FlashMode() {
#if CONFIG_ESPTOOLPY_FLASHMODE_QIO
  return "qio";
#elif CONFIG_ESPTOOLPY_FLASHMODE_QOUT
  return "qout";
#elif CONFIG_ESPTOOLPY_FLASHMODE_DIO
  return "dio";
#elif CONFIG_ESPTOOLPY_FLASHMODE_DOUT
  return "dout";
#elif CONFIG_ESPTOOLPY_OCT_FLASH
  return "opi";
#else
  return "unknown";
#endif
}

void Info(void*, tinyml_info_emit emit, void* arg) {
  char text[96];
  esp_chip_info_t chip;
  esp_chip_info(&chip);
#ifdef TINYML_BUILD_ID
  emit(arg, "build", TINYML_BUILD_ID);
#else
  esp_app_get_elf_sha256(text, 17);
  emit(arg, "build", text);
#endif
  emit(arg, "chip", ChipName(chip.model));
  snprintf(text, sizeof text, "v%d.%d", chip.revision / 100, chip.revision % 100);
  emit(arg, "revision", text);
  snprintf(text, sizeof text, "%d", chip.cores);
  emit(arg, "cores", text);
  uint8_t mac[6] = {};
  esp_read_mac(mac, ESP_MAC_WIFI_STA);
  snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  emit(arg, "mac", text);
  uint32_t cpu_hz = 0;
  if (esp_clk_tree_src_get_freq_hz(SOC_MOD_CLK_CPU, ESP_CLK_TREE_SRC_FREQ_PRECISION_CACHED, &cpu_hz) == ESP_OK) {
    snprintf(text, sizeof text, "%lu", static_cast<unsigned long>(cpu_hz / 1000000));
    emit(arg, "cpu-mhz", text);
  }
#if CONFIG_SPIRAM
  snprintf(text, sizeof text, "%u", static_cast<unsigned>(esp_psram_get_size()));
#else
  snprintf(text, sizeof text, "0");
#endif
  emit(arg, "psram-bytes", text);
  uint32_t flash_bytes = 0;
  esp_flash_get_size(nullptr, &flash_bytes);
  snprintf(text, sizeof text, "%lu", static_cast<unsigned long>(flash_bytes));
  emit(arg, "flash-bytes", text);
  emit(arg, "flash-mode", FlashMode());
  emit(arg, "idf", esp_get_idf_version());
  emit(arg, "tflm", TINYML_TFLM_VERSION);
  emit(arg, "esp-nn", TINYML_ESP_NN_VERSION);
  emit(arg, "board-config", CONFIG_TINYML_BOARD_CONFIG);
  emit(arg, "compiler", "gcc " __VERSION__);
  emit(arg, "cflags", TINYML_CFLAGS);
  emit(arg, "arena-where", tflm_engine_arena_where());  // arena-bytes/-configured/-shortfall: from the core
  snprintf(text, sizeof text, "%u", static_cast<unsigned>(board_largest_free()));
  emit(arg, "max-model-bytes", text);
  snprintf(text, sizeof text, "%u", static_cast<unsigned>(heap_caps_get_free_size(MALLOC_CAP_8BIT)));
  emit(arg, "heap-free", text);
  emit(arg, "engine", "tflm");
}

tinyml_runtime g_runtime;
tinyml_platform g_platform;
tinyml_core g_core;  // ~18 KB: static, not on the main task's stack
const tinyml_io g_io = {nullptr, ReadByte, Write};

}  // namespace

// --- board_platform.h ------------------------------------------------------------------------------------------

extern "C" uint64_t board_now_us(void) { return static_cast<uint64_t>(esp_timer_get_time()); }

extern "C" void* board_alloc(size_t bytes, size_t* largest) {
  void* p = heap_caps_aligned_alloc(16, bytes, kInternal);
#if CONFIG_SPIRAM
  if (p == nullptr) p = heap_caps_aligned_alloc(16, bytes, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
#endif
  if (p == nullptr) *largest = board_largest_free();
  return p;
}

extern "C" void board_free(void* ptr) { heap_caps_free(ptr); }

extern "C" size_t board_largest_free(void) {
  size_t largest = heap_caps_get_largest_free_block(kInternal);
#if CONFIG_SPIRAM
  size_t psram = heap_caps_get_largest_free_block(MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
  if (psram > largest) largest = psram;
#endif
  // Aligned allocation may need up to 15 bytes of the block.
  return largest > 16 ? largest - 16 : 0;
}

extern "C" size_t board_arena_largest_free(void) {
  size_t largest = heap_caps_get_largest_free_block(kInternal);
#if CONFIG_SPIRAM && CONFIG_TINYML_ARENA_PSRAM_FALLBACK
  size_t psram = heap_caps_get_largest_free_block(MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
  if (psram > largest) largest = psram;
#endif
  return largest > 16 ? largest - 16 : 0;  // aligned allocation may need up to 15 bytes of the block
}

extern "C" uint8_t* board_arena_alloc(size_t bytes, const char** where) {
  void* p = heap_caps_aligned_alloc(16, bytes, kInternal);
  *where = "internal";
#if CONFIG_SPIRAM && CONFIG_TINYML_ARENA_PSRAM_FALLBACK
  if (p == nullptr) {
    p = heap_caps_aligned_alloc(16, bytes, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
    *where = "psram";
  }
#endif
  return static_cast<uint8_t*>(p);
}

extern "C" void app_main(void) {
  esp_err_t rc = ESP_OK;
  const char* failed = ConsoleInit(&rc);
  g_platform.alloc = Alloc;
  g_platform.release = Release;
  g_platform.builtin_model = Builtin;
  g_platform.heap = Heap;
  g_platform.now_us = Now;
  g_platform.info = Info;
  // D3 of issue 13: an arena the heap cannot hold is shrunk to what it can, and the protocol comes up anyway;
  // the banner, tinyml-info and every model load say what was allocated against what was configured.
  tinyml_config config = {ResetReason(), CONFIG_TINYML_MAX_RUNS, CONFIG_TINYML_DB_MAX, {0, 0, 0},
                          CONFIG_TINYML_BATCH_MAX};
  config.arena.configured = CONFIG_TINYML_ARENA_SIZE;
  config.arena.heap_at_boot = board_arena_largest_free();
  config.arena.size = tinyml_arena_fit(CONFIG_TINYML_ARENA_SIZE, config.arena.heap_at_boot);
  if (tflm_engine_init(&g_runtime, config.arena.size) != 0) config.arena.size = 0;
  if (failed != nullptr) {
    // The console may half-work (a UART whose baud could not be set still talks at the boot rate): say it.
    char line[120];
    int n = snprintf(line, sizeof line, "e-[engine: %s failed at boot: %s]\r\n", failed, esp_err_to_name(rc));
    Write(nullptr, line, static_cast<size_t>(n));
  }
  // The samples buffer is 4 bytes a run: keep fewer runs rather than no protocol (info-max-runs says how many).
  while (tinyml_core_init(&g_core, &g_runtime, &g_platform, &g_io, &config) != 0 && config.max_runs > 1) {
    config.max_runs /= 2;
  }
  tinyml_core_boot(&g_core);
  tinyml_core_run(&g_core);  // reads the console forever
}
