/* The functions exported to JS, grouped by source file. Their contracts are
 * documented where they are defined and in shim/native/index.ts. */
#ifndef PAGESHARE_H
#define PAGESHARE_H

#include <node_api.h>

/* fd.c */
napi_value ps_pipe2(napi_env env, napi_callback_info info);
napi_value ps_eventfd(napi_env env, napi_callback_info info);
napi_value ps_read_eventfd(napi_env env, napi_callback_info info);
napi_value ps_flock(napi_env env, napi_callback_info info);
napi_value ps_funlock(napi_env env, napi_callback_info info);

/* process.c */
napi_value ps_set_child_subreaper(napi_env env, napi_callback_info info);
napi_value ps_is_child_subreaper(napi_env env, napi_callback_info info);
napi_value ps_set_memory_merge(napi_env env, napi_callback_info info);
napi_value ps_is_memory_merge(napi_env env, napi_callback_info info);
napi_value ps_pidfd_open(napi_env env, napi_callback_info info);
napi_value ps_wait_pidfd(napi_env env, napi_callback_info info);

/* watch.c */
napi_value ps_watch_readable(napi_env env, napi_callback_info info);

/* socket.c */
napi_value ps_unix_listen(napi_env env, napi_callback_info info);
napi_value ps_accept_connection(napi_env env, napi_callback_info info);
napi_value ps_unix_connect(napi_env env, napi_callback_info info);
napi_value ps_send_fd(napi_env env, napi_callback_info info);
napi_value ps_receive_fd(napi_env env, napi_callback_info info);

/* pty.c */
napi_value ps_set_window_size(napi_env env, napi_callback_info info);
napi_value ps_get_window_size(napi_env env, napi_callback_info info);
napi_value ps_open_pty(napi_env env, napi_callback_info info);

#endif
