// The Node.js and V8 flags the agent runs under. The agent is a small, long-running daemon that allocates little
// and keeps little; the runtime's defaults are sized for servers and only cost it resident memory. Every launcher
// passes these: bin/vipwarden-agent.js (its #! line), the systemd unit (NODE_OPTIONS, which the single executable
// reads too) and the testbed. node-flags.test.ts keeps them in step with this list, and every flag here must be
// allowed in NODE_OPTIONS.
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
