/* Process control: prctl flags, pidfd_open and waitid(P_PIDFD). */
#include "common.h"
#include "pageshare.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3 /* linux/wait.h, Linux 5.4 */
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67 /* linux/prctl.h, Linux 6.4 */
#define PR_GET_MEMORY_MERGE 68
#endif

/* ---- prctl ------------------------------------------------------------- */

/* setChildSubreaper(on): PR_SET_CHILD_SUBREAPER. */
napi_value ps_set_child_subreaper(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool on;
  if (!ps_get_args(env, info, 1, argv) || !ps_get_bool(env, argv[0], "on", &on))
    return NULL;
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1UL : 0UL, 0UL, 0UL, 0UL) != 0)
    return ps_throw_errno(env, errno, "prctl", NULL);
  return ps_undefined(env);
}

/* isChildSubreaper() -> boolean: PR_GET_CHILD_SUBREAPER. */
napi_value ps_is_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  int value = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, (unsigned long)&value, 0UL, 0UL, 0UL) != 0)
    return ps_throw_errno(env, errno, "prctl", NULL);
  return ps_bool(env, value != 0);
}

/* setMemoryMerge(on): PR_SET_MEMORY_MERGE (KSM for the whole process). */
napi_value ps_set_memory_merge(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool on;
  if (!ps_get_args(env, info, 1, argv) || !ps_get_bool(env, argv[0], "on", &on))
    return NULL;
  if (prctl(PR_SET_MEMORY_MERGE, on ? 1UL : 0UL, 0UL, 0UL, 0UL) != 0)
    return ps_throw_errno(env, errno, "prctl", NULL);
  return ps_undefined(env);
}

/* isMemoryMerge() -> boolean: PR_GET_MEMORY_MERGE. */
napi_value ps_is_memory_merge(napi_env env, napi_callback_info info) {
  (void)info;
  int value = prctl(PR_GET_MEMORY_MERGE, 0UL, 0UL, 0UL, 0UL);
  if (value < 0)
    return ps_throw_errno(env, errno, "prctl", NULL);
  return ps_bool(env, value != 0);
}

/* ---- pidfd ------------------------------------------------------------- */

/* pidfdOpen(pid) -> fd. pidfds are always close-on-exec. */
napi_value ps_pidfd_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t pid;
  if (!ps_get_args(env, info, 1, argv) ||
      !ps_get_int_in_range(env, argv[0], "pid", 1, INT32_MAX, &pid))
    return NULL;
  long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0U);
  if (fd < 0)
    return ps_throw_errno(env, errno, "pidfd_open", NULL);
  return ps_new_fd(env, (int)fd);
}

/* waitPidfd(pidfd) -> null while the process runs, else
 * { pid, exitCode, signal, status } where status is exitCode when it exited
 * and 128 + signal when a signal killed it (the containerd convention).
 * Reaps the process: it must be our child (or re-parented to us). */
napi_value ps_wait_pidfd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!ps_get_args(env, info, 1, argv) || !ps_get_fd(env, argv[0], "pidfd", &fd))
    return NULL;

  siginfo_t si = {0};
  int rc;
  do {
    rc = waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0)
    return ps_throw_errno(env, errno, "waitid", NULL);
  if (si.si_pid == 0)
    return ps_null(env); /* still running */

  bool exited = si.si_code == CLD_EXITED;
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  if (!ps_set(env, result, "pid", ps_int(env, si.si_pid)) ||
      !ps_set(env, result, "exitCode",
              exited ? ps_int(env, si.si_status) : ps_null(env)) ||
      !ps_set(env, result, "signal",
              exited ? ps_null(env) : ps_int(env, si.si_status)) ||
      !ps_set(env, result, "status",
              ps_int(env, exited ? si.si_status : 128 + si.si_status)))
    return NULL;
  return result;
}
