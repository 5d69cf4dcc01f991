/* sluice/plugin.h: the C ABI between Sluice and step plugins.
 *
 * A plugin is a shared library that exports one function,
 * sluice_plugin_entry(), returning a static table: the plugin's name and
 * version and its step types. Sluice calls a step type's run() once per
 * attempt, with the step's params and a table of callbacks.
 *
 * Versioning. SLUICE_PLUGIN_ABI_MAJOR changes only on a break; the host
 * refuses a plugin built for another major, naming both. Within a major,
 * structs grow only by appending members; each starts with its own size, and
 * a reader uses only the members that size covers. Step types carry their
 * own revision.
 *
 * Ownership, in one sentence each:
 * - What the host passes (call data, strings given to callbacks' callers) is
 *   borrowed for the duration of the call and must not be kept.
 * - What the plugin returns from sluice_plugin_entry() is static and must
 *   stay valid and unchanged while the library is loaded.
 * - Strings the plugin passes to callbacks are borrowed by the host for the
 *   call; the host copies what it keeps.
 * - Neither side frees memory the other allocated.
 *
 * Threads. run() may be called on any thread, and on several threads at once
 * for different attempts; callbacks must be called on the thread that runs
 * the attempt (or with the plugin's own synchronisation), and only during
 * run(). No C++ exception, signal handler or longjmp may cross this ABI.
 *
 * Strings are UTF-8, given as {data, size}; data need not end with NUL.
 * The file compiles as C99 and as C++.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_PLUGIN_ABI_MAJOR 1u
#define SLUICE_PLUGIN_ENTRY_SYMBOL "sluice_plugin_entry"

#if defined(__GNUC__)
#define SLUICE_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SLUICE_PLUGIN_EXPORT
#endif

typedef struct sluice_str {
  const char* data;
  size_t size;
} sluice_str;

/* A string literal as a sluice_str. */
#define SLUICE_STR(literal) { (literal), sizeof(literal) - 1 }

/* What run() returns. Fixed-width, never a bare enum. */
typedef int32_t sluice_status;
#define SLUICE_STATUS_OK ((sluice_status)0)
#define SLUICE_STATUS_FAILED ((sluice_status)1)    /* with a message given to fail() */
#define SLUICE_STATUS_CANCELLED ((sluice_status)2) /* stopped because cancelled() said so */

/* Callbacks the host gives a running step. `host` is the opaque first
 * argument of every one of them. */
typedef struct sluice_host {
  uint32_t struct_size; /* sizeof(sluice_host) as the host was built */
  uint32_t abi_major;
  void* host;
  /* One line (no trailing newline needed) for the attempt's log. */
  void (*log)(void* host, sluice_str line);
  /* How far the step is, from 0 to 1, with a short message. */
  void (*progress)(void* host, double fraction, sluice_str message);
  /* A measurement; `index`, the epoch or batch it was measured at, orders
     values of the same name. (ABI 1.0 named the parameter `step`.) */
  void (*metric)(void* host, sluice_str name, double value, int64_t index);
  /* Sets output `key` (as a subprocess step's $SLUICE_OUTPUT line does). */
  void (*output)(void* host, sluice_str key, sluice_str value);
  /* Why the attempt failed; call before returning SLUICE_STATUS_FAILED. */
  void (*fail)(void* host, sluice_str message);
  /* Non-zero once the attempt should stop (cancel, timeout). Poll it. */
  int32_t (*cancelled)(void* host);
} sluice_host;

/* One attempt of a step. */
typedef struct sluice_step_call {
  uint32_t struct_size; /* sizeof(sluice_step_call) as the host was built */
  sluice_str step_type; /* the step type's id */
  sluice_str params;    /* the step's `with:`, resolved: a JSON object */
  sluice_str output_dir;/* an empty folder of the attempt's own, for its files */
  sluice_str workdir;   /* the step's working directory */
  int32_t attempt;      /* 1, 2, ... */
  /* Appended in 1.1: hosts built before it pass a smaller struct_size. */
  sluice_str state_dir; /* a folder kept across this step's attempts in one run
                           (checkpoints); created on first use by the step */
  int32_t cpu;          /* the step's resources.cpu: how many threads to use */
} sluice_step_call;

typedef sluice_status (*sluice_run_fn)(const sluice_host* host, const sluice_step_call* call);

typedef struct sluice_step_type {
  uint32_t struct_size;     /* sizeof(sluice_step_type) as the plugin was built */
  sluice_str id;            /* [a-z0-9-]+, unique within the plugin */
  uint32_t revision;        /* bumped when the step's behaviour or params change */
  sluice_str description;
  sluice_str params_schema; /* JSON Schema (draft 2020-12 subset) of `with:` */
  sluice_run_fn run;
  /* Appended in ABI 1.2. The outputs run() sets, as a JSON object of
   * name: kind (kinds: value, file, dir, dataset, model, metrics), e.g.
   * {"model": "model", "accuracy": "value"}. `sluice validate` checks every
   * steps.<id>.outputs.<name> a pipeline reads against it. Empty: not
   * declared, and such reads are not checked. */
  sluice_str outputs;
  /* Appended in ABI 1.3: SLUICE_STEP_* bits; the host ignores bits it does
   * not know. */
  uint32_t flags;
} sluice_step_type;

/* run() returns within a millisecond and never waits: no sleeping, no I/O
 * that can block, no lock another thread may hold. The host may then call it
 * on the thread that schedules steps instead of handing it to a worker
 * thread, which saves a round trip between threads per attempt. The step's
 * timeout and a cancel are then seen only after run() returns. */
#define SLUICE_STEP_NONBLOCKING ((uint32_t)1)

typedef struct sluice_plugin {
  uint32_t struct_size; /* sizeof(sluice_plugin) as the plugin was built */
  uint32_t abi_major;   /* SLUICE_PLUGIN_ABI_MAJOR as the plugin was built */
  sluice_str name;      /* [a-z0-9-]+; steps say `uses: <name>/<step type>` */
  sluice_str version;   /* the plugin's own version, e.g. "1.4.0" */
  uint32_t step_type_count;
  const sluice_step_type* step_types;
} sluice_plugin;

/* The one exported symbol. `host_abi_major` is the host's major; a plugin
 * that cannot serve it may return NULL. */
typedef const sluice_plugin* (*sluice_plugin_entry_fn)(uint32_t host_abi_major);
SLUICE_PLUGIN_EXPORT const sluice_plugin* sluice_plugin_entry(uint32_t host_abi_major);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_PLUGIN_H */
