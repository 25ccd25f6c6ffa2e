// The fast fence's nftables table (issue 13, docs/design.md "Fast fence"): pure text, loaded by `nft -f`.
//
// Two tables of one name, `inet` (IPv4 and IPv6 traffic) and `arp` (ARP), each with
//   gatedN  every VIP this node has fenced (no timeout): added with its first live element, removed after its
//           address is gone
//   liveN   the VIPs whose fence is open, each element with a timeout set by the data-path helper from a fresh
//           keepalive answer (node-agent/native/fence.c); nf_tables checks the timeout at every lookup
// and rules that drop, for a gated VIP without a live element: ARP requests for it and ARP sent from it, packets
// to it (input), packets from it after SNAT (postrouting at priority srcnat + 10: what SNAT rewrote to the VIP, and
// what the node sends from it, including the kernel's neighbour advertisements, which carry the VIP as source).
// Loading is safe to repeat: the sets and their elements stay, the chains are flushed and filled again in the
// same transaction.

export const FENCE_TABLE = 'vipwarden_fence';

/** Chunk size of one helper request (its line is at most 1023 bytes: 16 IPv6 addresses fit). */
export const FENCE_BATCH = 16;

export function isTableName(t: string): boolean {
  return /^[a-z0-9_]{1,32}$/.test(t);
}

export function fenceRuleset(table: string = FENCE_TABLE): string {
  if (!isTableName(table)) throw new Error(`invalid nftables table name ${JSON.stringify(table)}`);
  const sets = (fams: readonly (4 | 6)[]) =>
    fams.flatMap((f) => [
      `  set gated${f} { type ipv${f}_addr; }`,
      `  set live${f} { type ipv${f}_addr; flags timeout; }`,
    ]);
  const chain = (name: string, hook: string, priority: number) =>
    `  chain ${name} { type filter hook ${hook} priority ${priority}; policy accept; }`;
  return [
    `table inet ${table} {`,
    ...sets([4, 6]),
    chain('input', 'input', -300),
    chain('postrouting', 'postrouting', 110),
    '}',
    `table arp ${table} {`,
    ...sets([4]),
    chain('input', 'input', 0),
    chain('output', 'output', 0),
    '}',
    ...['input', 'postrouting'].map((c) => `flush chain inet ${table} ${c}`),
    ...['input', 'output'].map((c) => `flush chain arp ${table} ${c}`),
    `add rule inet ${table} input ip daddr @gated4 ip daddr != @live4 counter drop`,
    `add rule inet ${table} input ip6 daddr @gated6 ip6 daddr != @live6 counter drop`,
    `add rule inet ${table} postrouting ip saddr @gated4 ip saddr != @live4 counter drop`,
    `add rule inet ${table} postrouting ip6 saddr @gated6 ip6 saddr != @live6 counter drop`,
    `add rule arp ${table} input arp daddr ip @gated4 arp daddr ip != @live4 counter drop`,
    `add rule arp ${table} output arp saddr ip @gated4 arp saddr ip != @live4 counter drop`,
    '',
  ].join('\n');
}

/** Splits a list into requests of at most `size` (pure). */
export function chunks<T>(items: readonly T[], size: number = FENCE_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
