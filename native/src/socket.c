/*
 * Unix stream sockets for runc's --console-socket: listen, accept, connect,
 * and passing one file descriptor (SCM_RIGHTS) with a name as data, which is
 * what runc sends: the pty master and its path, e.g. "/dev/pts/3".
 * All sockets are SOCK_NONBLOCK | SOCK_CLOEXEC.
 */
#include "common.h"
#include "pageshare.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4
#define NAME_MAX_BYTES 4096

/* Read a socket path argument into addr; false with an exception pending. */
static bool get_sockaddr(napi_env env, napi_value value, struct sockaddr_un *addr,
                         socklen_t *addrlen) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  size_t len;
  if (!ps_get_string(env, value, "path", addr->sun_path, sizeof addr->sun_path,
                     &len))
    return false;
  if (len == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE",
                          "The \"path\" argument must not be empty");
    return false;
  }
  *addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
  return true;
}

/* unixListen(path) -> listening fd bound to path (the path must not exist). */
napi_value ps_unix_listen(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un addr;
  socklen_t addrlen;
  if (!ps_get_args(env, info, 1, argv) ||
      !get_sockaddr(env, argv[0], &addr, &addrlen))
    return NULL;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ps_throw_errno(env, errno, "socket", NULL);
  if (bind(fd, (struct sockaddr *)&addr, addrlen) != 0) {
    int err = errno;
    close(fd);
    return ps_throw_errno(env, err, "bind", addr.sun_path);
  }
  if (listen(fd, LISTEN_BACKLOG) != 0) {
    int err = errno;
    close(fd);
    return ps_throw_errno(env, err, "listen", addr.sun_path);
  }
  return ps_new_fd(env, fd);
}

/* acceptConnection(listenFd) -> connected fd, or null if none is pending. */
napi_value ps_accept_connection(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int listen_fd;
  if (!ps_get_args(env, info, 1, argv) ||
      !ps_get_fd(env, argv[0], "listenFd", &listen_fd))
    return NULL;
  int fd;
  do {
    fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return ps_null(env);
    return ps_throw_errno(env, errno, "accept4", NULL);
  }
  return ps_new_fd(env, fd);
}

/* unixConnect(path) -> connected fd. Throws EAGAIN if the backlog is full. */
napi_value ps_unix_connect(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un addr;
  socklen_t addrlen;
  if (!ps_get_args(env, info, 1, argv) ||
      !get_sockaddr(env, argv[0], &addr, &addrlen))
    return NULL;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ps_throw_errno(env, errno, "socket", NULL);
  int rc;
  do {
    rc = connect(fd, (struct sockaddr *)&addr, addrlen);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    close(fd);
    return ps_throw_errno(env, err, "connect", addr.sun_path);
  }
  return ps_new_fd(env, fd);
}

/* sendFd(sockFd, fd, name): one sendmsg carrying fd (SCM_RIGHTS) and name as
 * data. An empty name is sent as a single NUL byte, since a stream socket
 * cannot carry ancillary data without at least one data byte. */
napi_value ps_send_fd(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int sock_fd, fd;
  char name[NAME_MAX_BYTES];
  size_t name_len;
  if (!ps_get_args(env, info, 3, argv) ||
      !ps_get_fd(env, argv[0], "sockFd", &sock_fd) ||
      !ps_get_fd(env, argv[1], "fd", &fd) ||
      !ps_get_string(env, argv[2], "name", name, sizeof name, &name_len))
    return NULL;

  struct iovec iov = {.iov_base = name, .iov_len = name_len ? name_len : 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.buf,
                       .msg_controllen = sizeof control.buf};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));

  ssize_t n;
  do {
    n = sendmsg(sock_fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return ps_throw_errno(env, errno, "sendmsg", NULL);
  if ((size_t)n != iov.iov_len)
    return ps_throw_error(env, "EIO", "sendmsg sent a partial name");
  return ps_undefined(env);
}

/* receiveFd(connFd) -> { fd, name } or null if nothing is pending (EAGAIN).
 * The fd arrives close-on-exec. Throws EPROTO if a message carries no fd or
 * more than one, ECONNRESET if the peer closed without sending one. */
napi_value ps_receive_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int conn_fd;
  if (!ps_get_args(env, info, 1, argv) ||
      !ps_get_fd(env, argv[0], "connFd", &conn_fd))
    return NULL;

  char name[NAME_MAX_BYTES];
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.buf,
                       .msg_controllen = sizeof control.buf};
  ssize_t n;
  do {
    n = recvmsg(conn_fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return ps_null(env);
    return ps_throw_errno(env, errno, "recvmsg", NULL);
  }

  int fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(c), sizeof(int));
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    /* More fds than we asked for: the kernel dropped the extra ones. */
    if (fd >= 0)
      close(fd);
    return ps_throw_error(env, "EPROTO",
                          "console socket message carried more than one fd");
  }
  if (fd < 0) {
    if (n == 0)
      return ps_throw_error(env, "ECONNRESET",
                            "console socket closed before an fd was received");
    return ps_throw_error(env, "EPROTO",
                          "console socket message carried no fd");
  }

  /* Trailing NULs (e.g. our own empty-name marker) are not part of the name. */
  size_t len = (size_t)n;
  while (len > 0 && name[len - 1] == '\0')
    len--;

  napi_value result, js_name;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_string_utf8(env, name, len, &js_name) != napi_ok ||
      !ps_set(env, result, "fd", ps_int(env, fd)) ||
      !ps_set(env, result, "name", js_name)) {
    close(fd);
    ps_throw_napi_failure(env, "receiveFd result");
    return NULL;
  }
  return result;
}
