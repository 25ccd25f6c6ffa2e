// The failsafe peer channel on the testbed (agent.yaml `peer:`, node-agent/peer/config.ts): one shared secret for
// the cluster, in a key file of the testbed's dir (mode 0600), and each agent listening on its node address.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import type { Testbed } from './testbed.js';

/** The port the agents' peer channel listens on (the agent's default). */
export const PEER_PORT = 9643;

/** Writes a fresh cluster secret into `dir`/peer.key (0600); returns the file. */
export function writePeerKey(dir: string): string {
  const file = join(dir, 'peer.key');
  writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  return file;
}

/** agent.yaml's `peer:` section for `node` of the testbed: its IPv4 node address, the shared key file. */
export function peerSection(tb: Testbed, node: string, keyFile: string): Record<string, unknown> {
  return { listen: tb.node(node).ip, port: PEER_PORT, keyFile };
}
