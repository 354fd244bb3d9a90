/* Terminals: window size ioctls, and openPty() (used by tests). */
#include "common.h"
#include "pageshare.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* setWindowSize(fd, rows, cols): ioctl TIOCSWINSZ. */
napi_value ps_set_window_size(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t rows, cols;
  if (!ps_get_args(env, info, 3, argv) || !ps_get_fd(env, argv[0], "fd", &fd) ||
      !ps_get_int_in_range(env, argv[1], "rows", 0, UINT16_MAX, &rows) ||
      !ps_get_int_in_range(env, argv[2], "cols", 0, UINT16_MAX, &cols))
    return NULL;
  struct winsize ws = {.ws_row = (unsigned short)rows,
                       .ws_col = (unsigned short)cols};
  if (ioctl(fd, TIOCSWINSZ, &ws) != 0)
    return ps_throw_errno(env, errno, "ioctl", NULL);
  return ps_undefined(env);
}

/* getWindowSize(fd) -> { rows, cols }: ioctl TIOCGWINSZ. */
napi_value ps_get_window_size(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!ps_get_args(env, info, 1, argv) || !ps_get_fd(env, argv[0], "fd", &fd))
    return NULL;
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0)
    return ps_throw_errno(env, errno, "ioctl", NULL);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  if (!ps_set(env, result, "rows", ps_int(env, ws.ws_row)) ||
      !ps_set(env, result, "cols", ps_int(env, ws.ws_col)))
    return NULL;
  return result;
}

/* openPty() -> { master, slave, name }: a new pseudo-terminal pair, both ends
 * O_CLOEXEC | O_NOCTTY, blocking; name is the slave path (/dev/pts/N). */
napi_value ps_open_pty(napi_env env, napi_callback_info info) {
  (void)info;
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return ps_throw_errno(env, errno, "posix_openpt", NULL);

  char name[128];
  const char *syscall = NULL;
  if (grantpt(master) != 0)
    syscall = "grantpt";
  else if (unlockpt(master) != 0)
    syscall = "unlockpt";
  else if ((errno = ptsname_r(master, name, sizeof name)) != 0)
    syscall = "ptsname_r";
  if (syscall) {
    int err = errno;
    close(master);
    return ps_throw_errno(env, err, syscall, NULL);
  }

  int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    int err = errno;
    close(master);
    return ps_throw_errno(env, err, "open", name);
  }

  napi_value result, js_name;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &js_name) != napi_ok ||
      !ps_set(env, result, "master", ps_int(env, master)) ||
      !ps_set(env, result, "slave", ps_int(env, slave)) ||
      !ps_set(env, result, "name", js_name)) {
    close(master);
    close(slave);
    ps_throw_napi_failure(env, "openPty result");
    return NULL;
  }
  return result;
}
