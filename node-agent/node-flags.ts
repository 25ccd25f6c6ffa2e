// The Node.js and V8 flags the agent runs under, and its malloc settings. The agent is a small, long-running
// daemon that allocates little and keeps little; the runtime's defaults are sized for servers and only cost it
// resident memory. Every launcher passes these: bin/vipwarden-agent.js (its #! line), the systemd unit and the DaemonSet (NODE_OPTIONS, which the
// single executable reads too) and the testbed. node-flags.test.ts keeps them in step with this list, and every
// flag here must be allowed in NODE_OPTIONS.
//
// Measured (idle agent, 10 groups checked every 100 ms, hack/bench --footprint-ms): see docs/design.md
// ("Footprint"). Not used, and why: --jitless / --lite-mode (no WebAssembly: Node's fetch, which the
// DigitalOcean floating IP uses, throws), --single-threaded-gc and --no-opt (not allowed in NODE_OPTIONS, so the
// single executable could not get them), --max-old-space-size (caps what 10,000 groups may need; saves nothing idle).
export const AGENT_NODE_FLAGS: readonly string[] = [
  // Young generation: V8 grows each semi-space to 16 MiB under steady allocation (the checks' sockets, timers and
  // promises), ~30 MiB resident that holds nothing live. 1 MiB: more scavenges, each of a few live objects.
  '--max-semi-space-size=1',
  // V8's background threads (GC helpers, compiler): 1 instead of one per core; each thread brings a malloc arena
  // (~2 MiB resident each, measured).
  '--v8-pool-size=1',
];

/**
 * GLIBC_TUNABLES for the agent: fixed malloc thresholds. glibc raises its mmap and trim thresholds as large blocks
 * are freed (up to 32 MiB), and then keeps what start-up freed: parsing and compiling the bundle leaves ~20 MiB of
 * free memory in the brk heap for the life of the process. With both at 128 KiB (glibc's initial values, now fixed)
 * large blocks are mapped and unmapped, and free memory at the heap's top goes back to the kernel. The agent
 * allocates little after start, so the extra system calls cost nothing measurable. Measured: idle SEA agent,
 * 10 groups checked every 100 ms, RSS 101 -> 83 MiB (docs/design.md "Footprint"). (arena_max=2 saved 2 MiB of
 * that, not worth a setting.) Read by glibc at exec: the launchers set it in the environment, as for NODE_OPTIONS.
 */
export const AGENT_GLIBC_TUNABLES = 'glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072';
