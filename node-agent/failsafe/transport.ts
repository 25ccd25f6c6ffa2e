// What failsafe needs from the peer channel, and an in-memory channel for tests. The authenticated UDP transport
// (node-agent/peer/transport.ts, UdpPeerTransport) has this shape: it authenticates, rejects replays and parses the
// body before a handler sees it, and passes the authenticated sender's node name.
import type { PeerAddress, PeerTransport as PeerChannel, PromiseHandler } from '../peer/transport.js';
import type { PromiseRequest } from './messages.js';

/** Where a peer listens (from its node record). */
export type PeerRef = PeerAddress;
export type { PromiseHandler };
/** What failsafe uses of the channel: ask a peer (undefined: no answer within the timeout), serve requests. */
export type PeerTransport = Pick<PeerChannel, 'request' | 'serve'>;

/** A LAN in memory: transports by node name; links can be cut, and every request counted. */
export class MemoryPeerNetwork {
  private readonly handlers = new Map<string, PromiseHandler>();
  private readonly cut = new Set<string>();
  readonly sent: { from: string; to: string; req: PromiseRequest }[] = [];

  transport(node: string): PeerTransport {
    return {
      request: async (peer, req) => {
        this.sent.push({ from: node, to: peer.node, req });
        const h = this.handlers.get(peer.node);
        if (!h || this.cut.has(node) || this.cut.has(peer.node)) return undefined;
        return structuredClone(await h(structuredClone(req), node));
      },
      serve: (handler) => {
        this.handlers.set(node, handler);
      },
    };
  }

  /** The node loses (or regains) the LAN. */
  setCut(node: string, cut: boolean): void {
    if (cut) this.cut.add(node);
    else this.cut.delete(node);
  }
}
