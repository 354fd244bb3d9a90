/* pageshare_native: Linux syscalls that Node does not expose. */
#include "common.h"
#include "pageshare.h"

#define EXPORT(js_name, fn)                                                    \
  { js_name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL }

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  static const napi_property_descriptor functions[] = {
      EXPORT("pipe2", ps_pipe2),
      EXPORT("eventfd", ps_eventfd),
      EXPORT("readEventfd", ps_read_eventfd),
      EXPORT("flock", ps_flock),
      EXPORT("funlock", ps_funlock),
      EXPORT("setChildSubreaper", ps_set_child_subreaper),
      EXPORT("isChildSubreaper", ps_is_child_subreaper),
      EXPORT("setMemoryMerge", ps_set_memory_merge),
      EXPORT("isMemoryMerge", ps_is_memory_merge),
      EXPORT("pidfdOpen", ps_pidfd_open),
      EXPORT("waitPidfd", ps_wait_pidfd),
      EXPORT("watchReadable", ps_watch_readable),
      EXPORT("unixListen", ps_unix_listen),
      EXPORT("acceptConnection", ps_accept_connection),
      EXPORT("unixConnect", ps_unix_connect),
      EXPORT("sendFd", ps_send_fd),
      EXPORT("receiveFd", ps_receive_fd),
      EXPORT("setWindowSize", ps_set_window_size),
      EXPORT("getWindowSize", ps_get_window_size),
      EXPORT("openPty", ps_open_pty),
  };
  NAPI_CALL(env, napi_define_properties(
                     env, exports, sizeof functions / sizeof functions[0],
                     functions));
  return exports;
}
