/*
 * Shared helpers for the pageshare native addon: argument validation and
 * error reporting. Every exported function validates its arguments here and
 * reports failures as JS exceptions, never by printing.
 *
 * Errors thrown for failed syscalls look like Node's own system errors:
 *   message "ENOENT: No such file or directory, bind '/x'"
 *   code    "ENOENT"         (errno name)
 *   errno   2                (positive Linux errno, as in os.constants.errno)
 *   syscall "bind"
 *   path    "/x"             (only when a path is involved)
 * Invalid arguments throw TypeError (code ERR_INVALID_ARG_TYPE or
 * ERR_INVALID_ARG_VALUE) or RangeError (code ERR_OUT_OF_RANGE).
 */
#ifndef PAGESHARE_COMMON_H
#define PAGESHARE_COMMON_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Evaluate a napi_* call; on failure make sure an exception is pending and
 * return NULL from the calling napi_callback. */
#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      ps_throw_napi_failure((env), #call);                                     \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

/* Fetch exactly `count` arguments (missing ones read as undefined). */
bool ps_get_args(napi_env env, napi_callback_info info, size_t count,
                 napi_value *argv);

/* Validators: return false with a pending exception if the value is bad. */
bool ps_get_fd(napi_env env, napi_value value, const char *name, int *out);
bool ps_get_int_in_range(napi_env env, napi_value value, const char *name,
                         int64_t min, int64_t max, int64_t *out);
bool ps_get_bool(napi_env env, napi_value value, const char *name, bool *out);
/* A string without NUL bytes whose UTF-8 form fits in buf (with its NUL). */
bool ps_get_string(napi_env env, napi_value value, const char *name, char *buf,
                   size_t bufsize, size_t *len);
bool ps_check_function(napi_env env, napi_value value, const char *name);

/* Throw helpers; they return NULL so callers can `return ps_throw_...`. */
napi_value ps_throw_errno(napi_env env, int err, const char *syscall,
                          const char *path);
napi_value ps_throw_error(napi_env env, const char *code, const char *message);
napi_value ps_throw_uv(napi_env env, int uv_err, const char *syscall);
void ps_throw_napi_failure(napi_env env, const char *what);

/* Small constructors used by several files. */
napi_value ps_int(napi_env env, int64_t value);
/* A descriptor the caller just opened, as a JS number; closed if that fails (never leaked). */
napi_value ps_new_fd(napi_env env, int fd);
napi_value ps_undefined(napi_env env);
napi_value ps_null(napi_env env);
napi_value ps_bool(napi_env env, bool value);
/* Set obj[key] = value; false with a pending exception on failure. */
bool ps_set(napi_env env, napi_value obj, const char *key, napi_value value);

#endif
