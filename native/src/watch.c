/*
 * watchReadable(fd, callback) -> { close() }
 *
 * A uv_poll_t on Node's own event loop. callback() is called (no arguments)
 * each time fd is readable, has hung up, or polling failed. Polling is
 * level-triggered: the callback must consume the data or close the watcher,
 * otherwise it is called again on the next loop iteration. While active the
 * watcher keeps the loop alive, like any libuv handle.
 *
 * Lifetime: the struct is freed once BOTH the uv handle has finished closing
 * (on_closed) and the JS close function has been garbage collected
 * (on_finalize), so neither a late close() call nor a late libuv callback
 * can touch freed memory. An async cleanup hook closes the handle if the
 * Node environment (e.g. a worker thread) shuts down with it still open.
 */
#include "common.h"
#include "pageshare.h"

#include <stdlib.h>
#include <uv.h>

typedef struct {
  uv_poll_t poll; /* first member: &poll == watcher */
  napi_env env;
  napi_ref callback;               /* NULL once closing */
  napi_async_context async_context; /* NULL once closing */
  napi_async_cleanup_hook_handle cleanup_hook;
  bool closing;       /* uv_close() requested */
  bool handle_closed; /* on_closed ran */
  bool finalized;     /* the JS close function was collected */
} watcher_t;

static void maybe_free(watcher_t *w) {
  if (w->handle_closed && w->finalized)
    free(w);
}

static void on_closed(uv_handle_t *handle) {
  watcher_t *w = (watcher_t *)handle;
  w->handle_closed = true;
  if (w->cleanup_hook) {
    /* Either unregisters the hook or tells Node it has completed. */
    napi_remove_async_cleanup_hook(w->cleanup_hook);
    w->cleanup_hook = NULL;
  }
  maybe_free(w);
}

/* Stop polling, drop JS references and start closing the uv handle.
 * Idempotent; safe from inside the callback. */
static void watcher_close(watcher_t *w) {
  if (w->closing)
    return;
  w->closing = true;
  if (w->callback) {
    napi_delete_reference(w->env, w->callback);
    w->callback = NULL;
  }
  if (w->async_context) {
    napi_async_destroy(w->env, w->async_context);
    w->async_context = NULL;
  }
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  watcher_close(arg); /* on_closed removes the hook, completing it */
}

static void on_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watcher_t *w = data;
  w->finalized = true;
  maybe_free(w);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  (void)status; /* on error libuv stops the poll; we still notify */
  (void)events;
  watcher_t *w = (watcher_t *)handle;
  if (w->closing || !w->callback)
    return;

  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok)
    return;
  napi_value fn, recv;
  if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn &&
      napi_get_global(env, &recv) == napi_ok) {
    /* napi_make_callback runs the microtask queue and async hooks, like any
     * libuv-driven callback in Node. It may call close() re-entrantly; w
     * stays allocated until on_closed, which only runs in a later phase. */
    napi_status rc = napi_make_callback(env, w->async_context, recv, fn, 0,
                                        NULL, NULL);
    if (rc == napi_pending_exception) {
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok)
        napi_fatal_exception(env, exception); /* -> 'uncaughtException' */
    }
  }
  napi_close_handle_scope(env, scope);
}

/* close(): the function handed to JS, bound to its watcher via `data`. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  void *data = NULL;
  NAPI_CALL(env, napi_get_cb_info(env, info, NULL, NULL, NULL, &data));
  watcher_close(data);
  return ps_undefined(env);
}

napi_value ps_watch_readable(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  if (!ps_get_args(env, info, 2, argv) || !ps_get_fd(env, argv[0], "fd", &fd) ||
      !ps_check_function(env, argv[1], "callback"))
    return NULL;

  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));

  watcher_t *w = calloc(1, sizeof *w);
  if (!w)
    return ps_throw_error(env, "ENOMEM", "out of memory");
  w->env = env;

  /* Note: uv_poll_init puts fd in non-blocking mode. */
  int err = uv_poll_init(loop, &w->poll, fd);
  if (err != 0) {
    free(w);
    return ps_throw_uv(env, err, "uv_poll_init");
  }

  /* From here on the handle exists: failures go through watcher_close. */
  napi_value resource_name, close_fn, handle;
  w->finalized = true; /* until the close function owns w */
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, "pageshare.watchReadable", NAPI_AUTO_LENGTH,
                              &resource_name) != napi_ok ||
      napi_async_init(env, NULL, resource_name, &w->async_context) != napi_ok ||
      napi_create_function(env, "close", NAPI_AUTO_LENGTH, js_close, w,
                           &close_fn) != napi_ok ||
      napi_create_object(env, &handle) != napi_ok ||
      napi_set_named_property(env, handle, "close", close_fn) != napi_ok)
    goto fail;
  w->finalized = false;
  if (napi_add_finalizer(env, close_fn, w, on_finalize, NULL, NULL) != napi_ok) {
    w->finalized = true;
    goto fail;
  }

  err = uv_poll_start(&w->poll, UV_READABLE, on_poll);
  if (err != 0) {
    watcher_close(w);
    return ps_throw_uv(env, err, "uv_poll_start");
  }
  /* Registered last: from now on on_closed must remove it. */
  if (napi_add_async_cleanup_hook(env, on_env_cleanup, w, &w->cleanup_hook) !=
      napi_ok) {
    w->cleanup_hook = NULL;
    watcher_close(w);
    ps_throw_napi_failure(env, "napi_add_async_cleanup_hook");
    return NULL;
  }
  return handle;

fail:
  watcher_close(w);
  ps_throw_napi_failure(env, "watchReadable setup");
  return NULL;
}
