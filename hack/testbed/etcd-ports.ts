// Free TCP ports for throw-away servers (etcd members, metrics listeners): found by binding them on every address
// they will be used on, in a network namespace when asked.
import { createServer } from 'node:net';
import { inNetns, run } from './util.js';

/** Finds `count` ports that can be bound on every one of `hosts` (probing by binding), in `netns` if given. */
export async function freePorts(count: number, hosts: string[], netns?: string): Promise<number[]> {
  if (netns) {
    const script = PORT_PROBE_SCRIPT;
    const r = await run(inNetns(netns, [process.execPath, '-e', script, JSON.stringify({ count, hosts })]), {
      timeoutMs: 15_000,
    });
    const ports = JSON.parse(r.stdout) as unknown;
    if (!Array.isArray(ports) || ports.length !== count || !ports.every((p) => Number.isInteger(p)))
      throw new Error(`freePorts: bad answer ${r.stdout}`);
    return ports as number[];
  }
  return probePorts(count, hosts);
}

async function probePorts(count: number, hosts: string[]): Promise<number[]> {
  const bind = (host: string, port: number) =>
    new Promise<ReturnType<typeof createServer> | undefined>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen({ host, port, exclusive: true }, () => resolve(s));
    });
  const close = (s: ReturnType<typeof createServer>) => new Promise<void>((r) => s.close(() => r()));
  const held: Array<ReturnType<typeof createServer>> = [];
  const ports: number[] = [];
  try {
    for (let attempt = 0; attempt < 200 && ports.length < count; attempt++) {
      const first = await bind(hosts[0] as string, 0);
      if (!first) throw new Error(`freePorts: cannot bind on ${hosts[0]}`);
      held.push(first);
      const addr = first.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      let ok = port > 0;
      for (const h of hosts.slice(1)) {
        if (!ok) break;
        const s = await bind(h, port);
        if (s) held.push(s);
        else ok = false;
      }
      if (ok) ports.push(port);
    }
  } finally {
    await Promise.all(held.map(close));
  }
  if (ports.length < count)
    throw new Error(`freePorts: found only ${ports.length} of ${count} ports on ${hosts.join(', ')}`);
  return ports;
}

// The same probe, as a script for `node -e` inside a namespace.
const PORT_PROBE_SCRIPT = `
const net = require('node:net');
const { count, hosts } = JSON.parse(process.argv[1]);
const bind = (host, port) => new Promise((res) => { const s = net.createServer(); s.once('error', () => res(undefined)); s.listen({ host, port, exclusive: true }, () => res(s)); });
(async () => {
  const held = [], ports = [];
  for (let a = 0; a < 200 && ports.length < count; a++) {
    const f = await bind(hosts[0], 0); if (!f) break; held.push(f);
    const port = f.address().port; let ok = true;
    for (const h of hosts.slice(1)) { const s = await bind(h, port); if (s) held.push(s); else { ok = false; break; } }
    if (ok) ports.push(port);
  }
  process.stdout.write(JSON.stringify(ports));
  process.exit(0);
})();
`;
