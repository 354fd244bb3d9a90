/* File-descriptor primitives: pipe2, eventfd, flock. */
#include "common.h"
#include "pageshare.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <unistd.h>

/* pipe2() -> [readFd, writeFd], both O_CLOEXEC (blocking). */
napi_value ps_pipe2(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return ps_throw_errno(env, errno, "pipe2", NULL);

  napi_value result;
  if (napi_create_array_with_length(env, 2, &result) != napi_ok ||
      napi_set_element(env, result, 0, ps_int(env, fds[0])) != napi_ok ||
      napi_set_element(env, result, 1, ps_int(env, fds[1])) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    ps_throw_napi_failure(env, "pipe2 result");
    return NULL;
  }
  return result;
}

/* eventfd() -> fd, counter starting at 0, EFD_CLOEXEC | EFD_NONBLOCK. */
napi_value ps_eventfd(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0)
    return ps_throw_errno(env, errno, "eventfd", NULL);
  return ps_new_fd(env, fd);
}

/* readEventfd(fd) -> bigint counter value (resets it), or null on EAGAIN. */
napi_value ps_read_eventfd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!ps_get_args(env, info, 1, argv) || !ps_get_fd(env, argv[0], "fd", &fd))
    return NULL;

  uint64_t value;
  ssize_t n;
  do {
    n = read(fd, &value, sizeof value);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return ps_null(env);
    return ps_throw_errno(env, errno, "read", NULL);
  }
  if (n != (ssize_t)sizeof value)
    return ps_throw_error(env, "EIO", "eventfd read returned a short count");

  napi_value result;
  NAPI_CALL(env, napi_create_bigint_uint64(env, value, &result));
  return result;
}

/* flock(fd, exclusive, wait) -> true if locked, false if !wait and the lock
 * is held elsewhere (EWOULDBLOCK). */
napi_value ps_flock(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  bool exclusive, wait;
  if (!ps_get_args(env, info, 3, argv) || !ps_get_fd(env, argv[0], "fd", &fd) ||
      !ps_get_bool(env, argv[1], "exclusive", &exclusive) ||
      !ps_get_bool(env, argv[2], "wait", &wait))
    return NULL;

  int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
  int rc;
  do {
    rc = flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (!wait && errno == EWOULDBLOCK)
      return ps_bool(env, false);
    return ps_throw_errno(env, errno, "flock", NULL);
  }
  return ps_bool(env, true);
}

/* funlock(fd): release the flock held through this open file description. */
napi_value ps_funlock(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!ps_get_args(env, info, 1, argv) || !ps_get_fd(env, argv[0], "fd", &fd))
    return NULL;
  int rc;
  do {
    rc = flock(fd, LOCK_UN);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0)
    return ps_throw_errno(env, errno, "flock", NULL);
  return ps_undefined(env);
}
