// Starts the peer channel when agent.yaml has a `peer:` section: reads and checks the key file, binds the socket,
// registers the metrics. Until the failsafe rules serve() their handler, every authenticated request is refused:
// the channel never makes this agent promise anything on its own.
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../common/log.js';
import type { PeerConfig } from './config.js';
import { PeerKey } from './envelope.js';
import type { PeerMetrics } from './guard.js';
import { UdpPeerTransport } from './transport.js';

export function promPeerMetrics(registry: Registry): PeerMetrics {
  const rejected = new Counter({
    name: 'vipwarden_peer_rejected_total',
    help: 'Peer channel messages refused, by reason (bad-mac, replay, stale, malformed, rate-limited, ...).',
    labelNames: ['reason'],
    registers: [registry],
  });
  const requests = new Counter({
    name: 'vipwarden_peer_requests_total',
    help: 'Peer promise requests: served (from a peer), answered and timeout (ours).',
    labelNames: ['kind'],
    registers: [registry],
  });
  return { rejected: (reason) => rejected.inc({ reason }), request: (kind) => requests.inc({ kind }) };
}

export async function startPeerChannel(o: {
  node: string;
  peer: PeerConfig;
  log: Logger;
  registry?: Registry;
}): Promise<UdpPeerTransport> {
  const key = PeerKey.fromFile(o.peer.keyFile);
  const t = new UdpPeerTransport({
    ...o.peer,
    node: o.node,
    key,
    log: o.log.child({ part: 'peer' }),
    metrics: o.registry ? promPeerMetrics(o.registry) : undefined,
  });
  t.serve((req) => ({ peer: o.node, granted: false, windowMs: 0, reason: 'notFailsafe', requestId: req.requestId }));
  await t.start();
  return t;
}
