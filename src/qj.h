/*
 * Internal declarations shared by the C files of queue_jobs.core.
 * Exported (non-static) names carry the prefix qj_; nothing here is public API.
 */
#ifndef QJ_H
#define QJ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"

#define QJ_VERSION "0.1.0"

/* Metatable names (registry keys); they show in "bad argument" messages via __name. */
#define QJ_ERROR_MT  "queue_jobs.error"
#define QJ_ARRAY_MT  "queue_jobs.array"
#define QJ_EMPTY_MT  "queue_jobs.empty_array"
#define QJ_RAW_MT    "queue_jobs.json.raw"
#define QJ_BUFFER_MT "queue_jobs.buffer"

/* Deepest nesting of arrays and objects, both ways. */
#define QJ_MAX_DEPTH 1000

#if defined(__GNUC__)
#define QJ_LIKELY(x)   __builtin_expect(!!(x), 1)
#define QJ_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define QJ_INLINE      static inline __attribute__((always_inline))
#else
#define QJ_LIKELY(x)   (x)
#define QJ_UNLIKELY(x) (x)
#define QJ_INLINE      static inline
#endif

/* ---- growable byte buffer owned by a Lua userdata (buf.c) -----------------------------
 * The storage belongs to a full userdata on the Lua stack, so a Lua error (for example a
 * memory error) anywhere cannot leak it: the collector frees it. Memory comes from the
 * state's allocator, so hosts that limit memory see it; growing calls it directly, so it
 * never runs a collector step (nor, therefore, a finalizer). */
typedef struct qj_buf {
  char *p;
  size_t len, cap;
  lua_Alloc alloc;
  void *ud;
  int busy;      /* a reusable buffer taken by a call in progress (qj_buf_take) */
} qj_buf;

/* A reusable buffer larger than this is released when its call ends (qj_buf_idle). */
#define QJ_BUF_KEEP ((size_t)1 << 20)

qj_buf *qj_buf_new(lua_State *L, size_t cap);   /* pushes the owning userdata */
/* Room for need more bytes: qj_buf_try_grow says 0 when there is no memory (b unchanged);
 * qj_buf_grow raises instead, after marking b not busy (only the call that holds b grows it,
 * so the error unwinds that call). */
int qj_buf_try_grow(qj_buf *b, size_t need);
void qj_buf_grow(lua_State *L, qj_buf *b, size_t need);
void qj_buf_shrink(qj_buf *b);                            /* frees the storage */
/* A reusable buffer (an upvalue, say, at index idx) is taken for the length of one call:
 * qj_buf_take pushes it and returns it emptied and marked busy. When a call in progress holds
 * it already (a finalizer re-entered the library while that call made Lua values), the new
 * call gets a buffer of its own instead, pushed in the same slot, so nested calls never share
 * one. qj_buf_give hands it back. Either way the call's stack grows by one slot.
 * The busy flag is only as good as the holder's exits: a holder must give the buffer back on
 * every path that leaves it, errors included. So between take and give a holder makes no
 * call that can raise other than qj_buf_grow on that buffer (which gives it back itself),
 * and gives it back before any Lua allocation (a memory error, or in Lua 5.3 an error raised
 * by a finalizer, would leave it busy for good: every later call would then get a fresh
 * buffer, correct but slower). json_encode.c and json_decode.c keep to this. */
qj_buf *qj_buf_take(lua_State *L, int idx);
void qj_buf_give(qj_buf *b);
/* Frees the storage of a reusable buffer that nobody holds, when it has grown past
 * QJ_BUF_KEEP; to call once the bytes are copied out. */
void qj_buf_idle(qj_buf *b);

QJ_INLINE char *qj_buf_reserve(lua_State *L, qj_buf *b, size_t n) {
  if (QJ_UNLIKELY(b->cap - b->len < n)) qj_buf_grow(L, b, n);
  return b->p + b->len;
}
QJ_INLINE void qj_buf_add(lua_State *L, qj_buf *b, const void *s, size_t n) {
  if (n == 0) return; /* the storage may not exist yet, and memcpy wants a pointer */
  memcpy(qj_buf_reserve(L, b, n), s, n);
  b->len += n;
}
QJ_INLINE void qj_buf_addc(lua_State *L, qj_buf *b, char c) {
  *qj_buf_reserve(L, b, 1) = c;
  b->len++;
}

/* ---- time (clock.c) -------------------------------------------------------------------
 * CLOCK_MONOTONIC in seconds; qj_clock_open sets core.monotime and core.sleep in table -1. */
double qj_monotime(void);
int qj_clock_open(lua_State *L);

/* ---- webhook signatures (webhook_lua.c over webhook.c) ----------------------------------
 * Registers core.webhook_sign and core.webhook_verify. */
int qj_webhook_open(lua_State *L);

/* ---- the engine's Lua object (engine_lua.c over engine.c) -------------------------------
 * Registers core.engine_open (after qj_http_open, whose handles its requests take, and
 * qj_json_open, whose array metatable its results use). */
int qj_engine_lua_open(lua_State *L);

/* ---- file handles for the batch journal (fileio.c) --------------------------------------
 * Registers core.file_sync, core.file_lock, core.file_truncate and core.isatty. */
int qj_fileio_open(lua_State *L);

/* ---- signals for a command line (signal.c) ----------------------------------------------
 * Registers core.signals_catch and core.signals_caught. */
int qj_signal_open(lua_State *L);

/* ---- a digest of a journal's item (digest.c) ---------------------------------------------
 * Registers core.digest. */
int qj_digest_open(lua_State *L);

/* ---- error objects (error.c) ----------------------------------------------------------
 * Pushes a new error table {kind = kind, message = message} with the queue_jobs.error
 * metatable. Callers add fields with lua_setfield. */
void qj_push_error(lua_State *L, const char *kind, const char *message);
int qj_error_open(lua_State *L);

/* ---- UTF-8 (utf8.c) -------------------------------------------------------------------
 * Length (2..4) of the valid UTF-8 sequence at s (s[0] >= 0x80) that ends before end,
 * or 0 when it is invalid (overlong, surrogate, above U+10FFFF, truncated, stray byte). */
size_t qj_utf8_seq(const unsigned char *s, const unsigned char *end);
/* Writes code point cp (at most U+10FFFF, not a surrogate) as UTF-8 at o; returns 1..4. */
size_t qj_utf8_put(unsigned char *o, unsigned long cp);
/* The value of a hex digit (either case), or -1. */
int qj_hex_digit(unsigned c);

/* ---- the API key in Lua (key_lua.c, over redact.c and its redact.h) ------------------------
 * qj_redact_buf writes s[0..n) with each echo of key replaced by QJ_REDACTED into b (as
 * qj_redact_write, redact.h), without making any Lua value (no finalizer can run while it
 * reads key). */
void qj_redact_buf(lua_State *L, qj_buf *b, const char *key, size_t keylen, const char *s,
                   size_t n);
int qj_key_open(lua_State *L); /* sets core.redact and core.key_fingerprint in table -1 */

/* ---- argument tables (args.c) ------------------------------------------------------------ */
int qj_args_open(lua_State *L); /* sets core.check_keys in table -1 */

/* ---- JSON (json.c, json_encode.c, json_decode.c) --------------------------------------- */
/* Stack slots the codec keeps free beyond what it checks for as it walks, so that when
 * lua_checkstack fails it can still build its error (Lua 5.3 does not grow the stack for
 * that, as 5.4 does). */
#define QJ_SPARE_SLOTS 16
int qj_json_decode_init(void); /* makes the C locale once per process; 0 on failure */
/* Sets core.json, core.null, core.array, core.decode_members, ... in table -1. */
int qj_json_open(lua_State *L);
/* json.encode, json.decode and the two below have the upvalues 1 the array metatable,
 * 2 empty_array, 3 a reusable qj_buf userdata (each its own). */
int qj_json_encode(lua_State *L);
int qj_json_decode(lua_State *L);
/* core.decode_members(text): a JSON object's members as their exact text (the emulator's). */
int qj_json_decode_members(lua_State *L);
/* core.decode_object(text, max_values, deadline, max_depth): qj_json_decode_object as the
 * client calls it, for specs and the fuzzer. */
int qj_json_decode_object_lua(lua_State *L);
/* Bounds of one decode for the client (docs/client.md, "Limits": an answer cannot cost more than
 * its max_body allows, and the operation's deadline covers decoding). */
typedef struct qj_dec_limits {
  size_t max_values; /* arrays, objects and strings (keys included) it may make; 0: no bound */
  double deadline;   /* CLOCK_MONOTONIC seconds (qj_monotime) at which it stops; 0: none */
  int max_depth;     /* nesting of the whole text */
  int exact_numbers; /* numbers but int64 integers come as json.raw values (their text) */
} qj_dec_limits;

/* Results of qj_json_decode_object. */
enum { QJ_DEC_OTHER = 0, QJ_DEC_OBJECT = 1, QJ_DEC_TOO_LARGE = -1, QJ_DEC_TIMEOUT = -2 };

/* For the client: decodes s[0..n) (s[n] must be '\0'; no Lua string is made) within lim.
 * QJ_DEC_OBJECT: it is a JSON object, pushed. Otherwise nothing is pushed: QJ_DEC_OTHER when
 * the text is not JSON or not an object (the caller has json.decode report on the text),
 * QJ_DEC_TOO_LARGE or QJ_DEC_TIMEOUT when a limit stopped it (the deadline is read once
 * every few thousand values). arraymt: absolute stack index (or upvalue index) of the array
 * metatable. b: a scratch buffer, which the decoder fills and copies out with no Lua
 * allocation in between (so no finalizer runs meanwhile): it may be shared with other calls,
 * nested ones included, and need not be taken. Finalizers do run during the decode (tables
 * and strings are made): s[0..n] must stay as it is until it returns. Raises only on memory
 * errors. */
int qj_json_decode_object(lua_State *L, const char *s, size_t n, int arraymt, qj_buf *b,
                          const qj_dec_limits *lim);
/* A json.raw value (json.c): a full userdata with no user value, whose own memory holds the
 * text, so nothing in Lua (debug.setuservalue included) can reach or change it. depth: the
 * levels of arrays and objects the text nests (0 for a number), which the encoder counts
 * with the levels around the value, as it counts a table's. qj_raw_push pushes a new one
 * (text s[0..n), checked by the caller); qj_raw_test returns the one at idx, or NULL. */
typedef struct qj_raw {
  size_t len;
  int depth;
  char text[];
} qj_raw;
qj_raw *qj_raw_push(lua_State *L, const char *s, size_t n, int depth);
qj_raw *qj_raw_test(lua_State *L, int idx);

/* For the client: encodes {"input":..,"metadata":..,"webhook":..} (nil members left out)
 * from arguments 1..3, like json.encode of that table; same upvalues and results. */
int qj_json_encode_job(lua_State *L);

#endif
