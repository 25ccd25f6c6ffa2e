#!/usr/bin/env node
// vipwarden testbed CLI:
//   node dist/hack/testbed/cli.js up [--nodes 3] [--ipv6] [--name demo]   create a testbed that stays after exit
//   node dist/hack/testbed/cli.js down [--id K]                            remove persistent testbed(s)
//   node dist/hack/testbed/cli.js list                                     show known testbeds
//   node dist/hack/testbed/cli.js cleanup [--all]                          remove leftovers of crashed runs
//                                                                          (--all: everything of ours, also live runs')
import { parseArgs } from 'node:util';
import { cleanupLeftovers, claimIsLive, listClaims, teardownTestbed } from './cleanup.js';
import { installSignalHandlers } from './registry.js';
import { createTestbed } from './testbed.js';
import { requireRoot } from './util.js';

const USAGE = `usage: cli.js up [--nodes N] [--ipv6] [--name NAME] | down [--id K] | list | cleanup [--all]`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      nodes: { type: 'string', default: '3' },
      ipv6: { type: 'boolean', default: false },
      name: { type: 'string' },
      id: { type: 'string' },
      all: { type: 'boolean', default: false },
    },
    strict: true,
  });
  switch (cmd) {
    case 'up': {
      requireRoot('cli up');
      installSignalHandlers();
      const nodes = Number(values.nodes);
      const tb = await createTestbed({
        nodes,
        ipv6: values.ipv6,
        persistent: true,
        ...(values.name ? { name: values.name } : {}),
      });
      const info = {
        id: tb.id,
        name: tb.name,
        dir: tb.dir,
        bridge: tb.bridge,
        bridgeIp: tb.bridgeIp,
        subnet: tb.subnet,
        ...(tb.subnet6 ? { subnet6: tb.subnet6, bridgeIp6: tb.bridgeIp6 } : {}),
        nodes: tb.nodes,
        client: tb.client,
        vips: [tb.vip(0), tb.vip(1)],
      };
      process.stdout.write(JSON.stringify(info, null, 2) + '\n');
      return 0;
    }
    case 'down': {
      requireRoot('cli down');
      const claims = listClaims().filter((c) => (values.id ? c.k === Number(values.id) : c.persistent));
      if (values.id && claims.length === 0) {
        process.stderr.write(`no testbed with id ${values.id}\n`);
        return 1;
      }
      for (const c of claims) {
        if (!c.persistent && claimIsLive(c)) {
          process.stderr.write(`testbed ${c.k} belongs to live process ${c.pid}; not removing (use cleanup --all)\n`);
          continue;
        }
        const removed = await teardownTestbed(c.k);
        process.stdout.write(`testbed ${c.k}: removed ${removed.length} resources\n`);
      }
      return 0;
    }
    case 'list': {
      for (const c of listClaims()) {
        const state = c.persistent ? 'persistent' : claimIsLive(c) ? `owner ${c.pid}` : 'stale';
        process.stdout.write(`${c.k}\t198.18.${c.k}.0/24\t${c.name}\t${c.nodes} nodes\t${state}\t${c.dir}\n`);
      }
      return 0;
    }
    case 'cleanup': {
      requireRoot('cli cleanup');
      const r = await cleanupLeftovers({ all: values.all });
      for (const x of r.removed) process.stdout.write(`removed ${x}\n`);
      for (const x of r.skipped) process.stdout.write(`kept ${x}\n`);
      return 0;
    }
    default:
      process.stderr.write(USAGE + '\n');
      return 64;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
