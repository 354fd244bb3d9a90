#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- throwing ---------------------------------------------------------- */

static bool exception_pending(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  return pending;
}

/* Throw a TypeError or RangeError with a Node-style `code`, printf-style. */
static void throw_arg_error(napi_env env, bool range, const char *code,
                            const char *fmt, ...) {
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  if (range)
    napi_throw_range_error(env, code, message);
  else
    napi_throw_type_error(env, code, message);
}

napi_value ps_throw_error(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

void ps_throw_napi_failure(napi_env env, const char *what) {
  if (exception_pending(env))
    return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char message[256];
  snprintf(message, sizeof message, "Node-API call failed: %s (%s)", what,
           info && info->error_message ? info->error_message : "unknown");
  napi_throw_error(env, "ERR_NAPI_FAILURE", message);
}

/* Build an Error with message "<CODE>: <description>, <syscall>[ '<path>']"
 * and the properties code, errno, syscall (and path). */
static napi_value throw_system_error(napi_env env, const char *code,
                                     const char *description, int err,
                                     const char *syscall, const char *path) {
  char message[512];
  if (path)
    snprintf(message, sizeof message, "%s: %s, %s '%s'", code, description,
             syscall, path);
  else
    snprintf(message, sizeof message, "%s: %s, %s", code, description,
             syscall);

  napi_value js_code, js_message, error;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code) !=
          napi_ok ||
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &js_message) !=
          napi_ok ||
      napi_create_error(env, js_code, js_message, &error) != napi_ok) {
    ps_throw_napi_failure(env, "napi_create_error");
    return NULL;
  }
  napi_value js_syscall, js_errno;
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall);
  napi_create_int32(env, err, &js_errno);
  napi_set_named_property(env, error, "errno", js_errno);
  napi_set_named_property(env, error, "syscall", js_syscall);
  if (path) {
    napi_value js_path;
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &js_path);
    napi_set_named_property(env, error, "path", js_path);
  }
  napi_throw(env, error);
  return NULL;
}

napi_value ps_throw_errno(napi_env env, int err, const char *syscall,
                          const char *path) {
  /* GNU extensions (glibc >= 2.32): thread-safe name and description. */
  const char *name = strerrorname_np(err);
  const char *description = strerrordesc_np(err);
  char fallback[32];
  if (!name) {
    snprintf(fallback, sizeof fallback, "E%d", err);
    name = fallback;
  }
  return throw_system_error(env, name, description ? description : "Unknown error",
                            err, syscall, path);
}

napi_value ps_throw_uv(napi_env env, int uv_err, const char *syscall) {
  /* libuv errors are negated errnos on Unix. */
  return throw_system_error(env, uv_err_name(uv_err), uv_strerror(uv_err),
                            -uv_err, syscall, NULL);
}

/* ---- arguments --------------------------------------------------------- */

bool ps_get_args(napi_env env, napi_callback_info info, size_t count,
                 napi_value *argv) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    ps_throw_napi_failure(env, "napi_get_cb_info");
    return false;
  }
  return true;
}

static const char *type_name(napi_valuetype type) {
  switch (type) {
  case napi_undefined: return "undefined";
  case napi_null: return "null";
  case napi_boolean: return "boolean";
  case napi_number: return "number";
  case napi_string: return "string";
  case napi_symbol: return "symbol";
  case napi_object: return "object";
  case napi_function: return "function";
  case napi_external: return "external";
  case napi_bigint: return "bigint";
  }
  return "unknown";
}

static bool check_type(napi_env env, napi_value value, const char *name,
                       napi_valuetype expected) {
  napi_valuetype actual;
  if (napi_typeof(env, value, &actual) != napi_ok) {
    ps_throw_napi_failure(env, "napi_typeof");
    return false;
  }
  if (actual != expected) {
    throw_arg_error(env, false, "ERR_INVALID_ARG_TYPE",
                    "The \"%s\" argument must be of type %s. Received %s", name,
                    type_name(expected), type_name(actual));
    return false;
  }
  return true;
}

bool ps_get_int_in_range(napi_env env, napi_value value, const char *name,
                         int64_t min, int64_t max, int64_t *out) {
  if (!check_type(env, value, name, napi_number))
    return false;
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) {
    ps_throw_napi_failure(env, "napi_get_value_double");
    return false;
  }
  if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max) {
    throw_arg_error(env, true, "ERR_OUT_OF_RANGE",
                    "The value of \"%s\" is out of range. It must be an "
                    "integer >= %lld and <= %lld. Received %g",
                    name, (long long)min, (long long)max, d);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool ps_get_fd(napi_env env, napi_value value, const char *name, int *out) {
  int64_t fd;
  if (!ps_get_int_in_range(env, value, name, 0, INT32_MAX, &fd))
    return false;
  *out = (int)fd;
  return true;
}

bool ps_get_bool(napi_env env, napi_value value, const char *name, bool *out) {
  if (!check_type(env, value, name, napi_boolean))
    return false;
  if (napi_get_value_bool(env, value, out) != napi_ok) {
    ps_throw_napi_failure(env, "napi_get_value_bool");
    return false;
  }
  return true;
}

bool ps_get_string(napi_env env, napi_value value, const char *name, char *buf,
                   size_t bufsize, size_t *len) {
  if (!check_type(env, value, name, napi_string))
    return false;
  size_t needed;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &needed) != napi_ok) {
    ps_throw_napi_failure(env, "napi_get_value_string_utf8");
    return false;
  }
  if (needed >= bufsize) {
    throw_arg_error(env, true, "ERR_OUT_OF_RANGE",
                    "The \"%s\" argument is too long: %zu bytes, at most %zu",
                    name, needed, bufsize - 1);
    return false;
  }
  if (napi_get_value_string_utf8(env, value, buf, bufsize, len) != napi_ok) {
    ps_throw_napi_failure(env, "napi_get_value_string_utf8");
    return false;
  }
  if (strlen(buf) != *len) {
    throw_arg_error(env, false, "ERR_INVALID_ARG_VALUE",
                    "The \"%s\" argument must not contain null bytes", name);
    return false;
  }
  return true;
}

bool ps_check_function(napi_env env, napi_value value, const char *name) {
  return check_type(env, value, name, napi_function);
}

/* ---- values ------------------------------------------------------------ */

napi_value ps_int(napi_env env, int64_t value) {
  napi_value result;
  NAPI_CALL(env, napi_create_int64(env, value, &result));
  return result;
}

napi_value ps_new_fd(napi_env env, int fd) {
  napi_value result = ps_int(env, fd);
  if (!result)
    close(fd);
  return result;
}

napi_value ps_undefined(napi_env env) {
  napi_value result;
  NAPI_CALL(env, napi_get_undefined(env, &result));
  return result;
}

napi_value ps_null(napi_env env) {
  napi_value result;
  NAPI_CALL(env, napi_get_null(env, &result));
  return result;
}

napi_value ps_bool(napi_env env, bool value) {
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, value, &result));
  return result;
}

bool ps_set(napi_env env, napi_value obj, const char *key, napi_value value) {
  if (value == NULL)
    return false; /* the constructor already threw */
  if (napi_set_named_property(env, obj, key, value) != napi_ok) {
    ps_throw_napi_failure(env, "napi_set_named_property");
    return false;
  }
  return true;
}
