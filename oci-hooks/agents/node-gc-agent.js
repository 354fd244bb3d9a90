'use strict';
// pageshare Node.js GC agent. Bind-mounted read-only into a container and loaded with
// NODE_OPTIONS="--require /.pageshare/node-gc-agent.js"; PAGESHARE_GC_DIR names a writable
// per-container dir shared with the shim (shim/gc/node-gc-trigger.ts).
//
// Protocol: the shim writes `$PAGESHARE_GC_DIR/request` (one line: a request id) and sends
// SIGURG. The agent runs a memory-reducing, fully compacting V8 GC and then atomically writes
// `$PAGESHARE_GC_DIR/ack-<pid>` (pid as seen inside the container) holding JSON:
//   {id, pid, ok, method, gcMs, before: {rssKB, anonKB, ...}, after: {...}}
// The same request id signalled again is acknowledged again without a second GC; a signal
// that arrives during a GC is merged into one follow-up run.
//
// How the shim tells agent processes apart: the agent keeps its own file open (a CLOEXEC fd,
// so exec'd non-Node children do not inherit it) and the shim matches that fd's dev+ino, and
// requires SIGURG in the process's SigCgt. The listener is installed before the fd is
// opened, so an fd always means an armed listener.
//
// Why SIGURG: its default action is "ignore", so a signal that reaches a process without
// the listener (pid reuse, an app that called removeAllListeners, a wrong pick) does
// nothing. SIGPWR or SIGUSR2 would kill such a process.
//
// The agent never throws into the app, writes nothing to stdout/stderr, starts no threads,
// opens no ports and keeps no ref'd handle (Node unrefs signal handles), so an app exits
// exactly as it would without it. Signals reach the main thread only: worker threads'
// heaps are not collected.
(function pageshareNodeGcAgent() {
  try {
    const LOADED = Symbol.for('pageshare.node-gc-agent');
    if (process[LOADED]) return; // required twice
    if (!require('worker_threads').isMainThread) return;
    const dir = process.env.PAGESHARE_GC_DIR; // left in the environment: Node children load their own agent
    if (!dir) return;

    const fs = require('fs');
    const path = require('path');
    const v8 = require('v8');

    const SIGNAL = 'SIGURG';
    const MAX_REQUEST_ID_LENGTH = 200;
    // Bounds a GC whose inspector callback never comes; the shim gives up long before.
    const WATCHDOG_MS = 15000;
    const COMPACT_FLAG = 'compact-on-every-full-gc';

    // A flag the user set on the command line is theirs: neither set nor cleared here.
    const commandLine = process.execArgv.join(' ') + ' ' + (process.env.NODE_OPTIONS || '');
    const userCompacts = /compact[-_]on[-_]every[-_]full[-_]gc/.test(commandLine);

    let busy = false;
    let signalledWhileBusy = false;
    let lastAck = null; // { id, text }
    let extensionGc = null;

    function setV8Flag(flag) {
      try {
        v8.setFlagsFromString(flag);
      } catch (_) {
        /* unsupported flag: run without it */
      }
    }

    function memoryStats() {
      const stats = {};
      try {
        const rollup = fs.readFileSync('/proc/self/smaps_rollup', 'latin1');
        const field = (name) => {
          const m = new RegExp('^' + name + ':\\s+(\\d+)', 'm').exec(rollup);
          return m ? Number(m[1]) : undefined;
        };
        stats.rssKB = field('Rss');
        stats.anonKB = field('Anonymous');
        stats.privateDirtyKB = field('Private_Dirty');
      } catch (_) {
        /* no smaps_rollup (old kernel): heap figures only */
      }
      try {
        const heap = v8.getHeapStatistics();
        stats.heapTotalKB = Math.round(heap.total_heap_size / 1024);
        stats.heapUsedKB = Math.round(heap.used_heap_size / 1024);
        stats.externalKB = Math.round(heap.external_memory / 1024);
      } catch (_) {
        /* ignore */
      }
      return stats;
    }

    function readRequestId() {
      try {
        const id = fs.readFileSync(path.join(dir, 'request'), 'utf8').split('\n')[0].trim();
        return id && id.length <= MAX_REQUEST_ID_LENGTH ? id : null;
      } catch (_) {
        return null;
      }
    }

    // Write aside, then rename: the shim never reads a half-written ack.
    function writeAck(text) {
      try {
        const tmp = path.join(dir, '.ack-' + process.pid + '.tmp');
        fs.writeFileSync(tmp, text);
        fs.renameSync(tmp, path.join(dir, 'ack-' + process.pid));
      } catch (_) {
        /* read-only or missing dir: the shim times out */
      }
    }

    // Fallback when there is no inspector (e.g. --experimental-permission): the gc extension's
    // gc() is a full mark-compact but not memory-reducing, so it runs twice. Call it without
    // arguments: V8 11.3 reads gc({type: 'major'}) as a request for a *minor* GC.
    function extensionGcTwice() {
      if (!extensionGc) {
        setV8Flag('--expose-gc');
        try {
          extensionGc = require('vm').runInNewContext('gc');
        } finally {
          setV8Flag('--no-expose-gc');
        }
      }
      extensionGc();
      extensionGc();
    }

    // HeapProfiler.collectGarbage over an in-process inspector session (no port is opened) is
    // Isolate::LowMemoryNotification(): "Mark-Compact (reduce)" rounds that also shrink new
    // space and release pooled pages, more than gc() does.
    function reducingGc(done) {
      let session = null;
      try {
        session = new (require('inspector').Session)();
        session.connect();
      } catch (_) {
        session = null;
      }
      if (!session) {
        try {
          extensionGcTwice();
          done('gc-extension', null);
        } catch (err) {
          done('none', err);
        }
        return;
      }
      session.post('HeapProfiler.collectGarbage', (err) => {
        // Disconnecting inside this callback deadlocks the main thread (futex wait, deaf to
        // SIGTERM): defer it.
        setImmediate(() => {
          try {
            session.disconnect();
          } catch (_) {
            /* ignore */
          }
        });
        if (!err) {
          done('low-memory-notification', null);
          return;
        }
        try {
          extensionGcTwice();
          done('gc-extension', null);
        } catch (fallbackErr) {
          done('none', fallbackErr);
        }
      });
    }

    function onSignal() {
      if (busy) {
        signalledWhileBusy = true;
        return;
      }
      try {
        const id = readRequestId();
        if (!id) return;
        if (lastAck && lastAck.id === id) {
          writeAck(lastAck.text); // the shim asked again (a lost ack?): no second GC
          return;
        }
        busy = true;
        const started = process.hrtime.bigint();
        const before = memoryStats();
        let finished = false;
        let watchdog = null;
        const finish = (method, err) => {
          if (finished) return;
          finished = true;
          clearTimeout(watchdog);
          if (!userCompacts) setV8Flag('--no-' + COMPACT_FLAG);
          try {
            const gcMs = Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10;
            const text = JSON.stringify({ id, pid: process.pid, ok: !err, method, gcMs, before, after: memoryStats() }) + '\n';
            lastAck = { id, text };
            writeAck(text);
          } catch (_) {
            /* ignore */
          }
          busy = false;
          if (signalledWhileBusy) {
            signalledWhileBusy = false;
            setImmediate(onSignal);
          }
        };
        watchdog = setTimeout(() => finish('timeout', new Error('timeout')), WATCHDOG_MS);
        watchdog.unref();
        // Makes every full GC evacuate every page: the heap ends up dense, and freed pages go
        // back to the OS instead of into the dump.
        if (!userCompacts) setV8Flag('--' + COMPACT_FLAG);
        reducingGc(finish);
      } catch (_) {
        busy = false;
      }
    }

    process.on(SIGNAL, onSignal);
    let fd;
    try {
      fd = fs.openSync(__filename, 'r'); // libuv opens with O_CLOEXEC
    } catch (_) {
      process.removeListener(SIGNAL, onSignal); // unidentifiable: the shim would never signal
      return;
    }
    Object.defineProperty(process, LOADED, { value: { fd, signal: SIGNAL }, enumerable: false });
  } catch (_) {
    /* never throw into the app */
  }
})();
