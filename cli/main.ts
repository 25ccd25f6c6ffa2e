// vipwarden: the operator's command line, reading etcd directly (bare VMs).
//   vipwarden status [-o json]          groups, VIPs, holder, epoch, candidates' liveness and health
//   vipwarden events [group] [-o json]  failover history
//   vipwarden move <group> <node>       pin the group to a node (planned move through the release fast path)
//   vipwarden move <group> --unpin      give the choice back to priorities
//   vipwarden drain <node> / undrain <node>
//   vipwarden validate FILE...          FailoverGroups, agent and controller configs, offline
// Options anywhere on the line: --etcd URL[,URL] (or VIPWARDEN_ETCD), --prefix /vipwarden/ (or VIPWARDEN_PREFIX),
// --timeout ms; --help, --version.
//   TLS: --etcd-ca, --etcd-cert, --etcd-key FILE (or VIPWARDEN_ETCD_CA, _CERT, _KEY); user and password instead of a
//   client certificate: --etcd-auth-file FILE holding "user:password" (or VIPWARDEN_ETCD_AUTH_FILE)
import type { Etcd3 } from 'etcd3';
import { versionLine } from '../common/command-line.js';
import { connectEtcd } from '../common/etcd.js';
import { isResourceName } from '../common/ip.js';
import { decode, DrainRecord, GroupRecord, Keys } from '../common/keyspace.js';
import { assertSecretFiles, secretFilesOf } from '../common/secret-file.js';
import { FailoverGroupSpec } from '../crds/failovergroup.js';
import { parseCli, UsageError, type Options } from './args.js';
import { collectStatus, knownNodes, listEvents, listOutages, renderEvents, renderStatus } from './status.js';
import { renderValidation, validateFile } from './validate.js';

export { parseArgs, UsageError, type Options } from './args.js';
export { collectStatus, renderEvents, renderStatus, type GroupStatus, type Status } from './status.js';

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
}

/** At most `max` positional arguments, and --unpin only where it means something. */
function expectArgs(cmd: string, args: readonly string[], o: Options, max: number): void {
  if (args.length > max) throw new UsageError(`${cmd}: unexpected argument ${args[max]}`);
  if (o.unpin && cmd !== 'move') throw new UsageError(`--unpin only goes with move`);
}

/** A short reason for an etcd failure, for the operator. */
export function etcdFailure(endpoints: readonly string[], err: unknown, timeoutMs: number): string | undefined {
  const msg = err instanceof Error ? err.message : String(err);
  let why: string | undefined;
  if (/ECONNREFUSED/.test(msg)) why = 'connection refused';
  else if (/EHOSTUNREACH|ENETUNREACH/.test(msg)) why = 'host unreachable';
  else if (/ENOTFOUND|EAI_AGAIN/.test(msg)) why = 'name not found';
  else if (/deadline|timed out|timeout/i.test(msg)) why = `no answer within ${timeoutMs} ms`;
  else if (/unavailable|No connection|connect/i.test(msg)) why = msg.replace(/\s*Resolution note:\s*\.?/, '').trim();
  return why && `cannot reach etcd at ${endpoints.join(',')}: ${why}. Check --etcd or VIPWARDEN_ETCD.`;
}

const USAGE = `usage: vipwarden [options] <command> [options]
  status [-o json]            groups, VIPs, holder, epoch, candidates, failing checks, rejected groups
  events [group] [-o json]    failover history
  move <group> <node>         pin a group to a node (planned move)
  move <group> --unpin        let priorities choose again
  drain <node> | undrain <node>
  validate FILE...            check FailoverGroups, agent and controller configs offline
options: --etcd URL[,URL] (VIPWARDEN_ETCD), --prefix P (VIPWARDEN_PREFIX), --timeout MS, -o json|table,
         --node NAME (validate: for an agent config without node:), --help, --version
  --etcd-ca FILE, --etcd-cert FILE, --etcd-key FILE (VIPWARDEN_ETCD_CA, _CERT, _KEY)
  --etcd-auth-file FILE holding "user:password" (VIPWARDEN_ETCD_AUTH_FILE)`;

async function withEtcd<T>(o: Options, fn: (c: Etcd3, k: Keys) => Promise<T>): Promise<T> {
  // The etcd auth file and the TLS key: private to their owner, as for the agent and the controller.
  assertSecretFiles(secretFilesOf({ etcd: { auth: o.auth, tls: o.tls } }));
  const client = connectEtcd({
    endpoints: o.etcd,
    timeoutMs: o.timeoutMs,
    dialTimeoutMs: o.timeoutMs,
    tls: o.tls,
    auth: o.auth,
  });
  try {
    return await fn(client, new Keys(o.prefix));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const unreachable = etcdFailure(o.etcd, err, o.timeoutMs);
    if (unreachable) throw new Error(unreachable);
    throw err;
  } finally {
    client.close();
  }
}

function needName(v: string | undefined, what: string): string {
  if (!v) throw new UsageError(`${what} is missing`);
  if (!isResourceName(v)) throw new UsageError(`${what} "${v}" is not a valid name`);
  return v;
}

type Command = (args: string[], o: Options, io: CliIO, extra: { node?: string }) => Promise<number>;

const status: Command = (args, o, io) => {
  expectArgs('status', args, o, 0);
  return withEtcd(o, async (c, k) => {
    const s = await collectStatus(c, k);
    if (o.output === 'json') io.out(JSON.stringify(s, null, 2));
    else for (const l of renderStatus(s)) io.out(l);
    return 0;
  });
};

const events: Command = (args, o, io) => {
  expectArgs('events', args, o, 1);
  return withEtcd(o, async (c, k) => {
    const group = args[0] ? needName(args[0], 'group') : undefined;
    const [evs, outages] = await Promise.all([listEvents(c, k, group), listOutages(c, k, group)]);
    // JSON stays the list of transitions; the outages the agents measured show in the table.
    if (o.output === 'json') io.out(JSON.stringify(evs, null, 2));
    else for (const l of renderEvents(evs, outages)) io.out(l);
    return 0;
  });
};

const move: Command = (args, o, io) => {
  expectArgs('move', args, o, o.unpin ? 1 : 2);
  return withEtcd(o, async (c, k) => {
    const group = needName(args[0], 'group');
    if (o.unpin) {
      await c.delete().key(k.move(group)).exec();
      io.out(`${group}: unpinned; priorities choose the holder again`);
      return 0;
    }
    const node = needName(args[1], 'node');
    const g = decode(GroupRecord, await c.get(k.group(group)).string());
    if (!g) throw new UsageError(`no group named ${group}`);
    const spec = FailoverGroupSpec.safeParse(g.spec);
    if (spec.success && !spec.data.nodes.some((n) => n.name === node))
      throw new UsageError(`${node} is not a candidate node of ${group}`);
    await c
      .put(k.move(group))
      .value(JSON.stringify({ to: node, at: Date.now() }))
      .exec();
    io.out(
      `${group}: pinned to ${node}; it moves there once ${node} is healthy (undo with: vipwarden move ${group} --unpin)`,
    );
    return 0;
  });
};

function drain(cmd: 'drain' | 'undrain'): Command {
  return (args, o, io) => {
    expectArgs(cmd, args, o, 1);
    return withEtcd(o, async (c, k) => {
      const node = needName(args[0], 'node');
      if (cmd === 'drain') {
        // A typo would drain nothing and say it did: only a node that is registered or named by a group.
        if (!(await knownNodes(c, k)).has(node))
          throw new UsageError(`no node named ${node}: it is not registered and no group names it`);
        await c
          .put(k.drain(node))
          .value(JSON.stringify(DrainRecord.parse({ at: Date.now(), by: 'cli' })))
          .exec();
        io.out(`${node}: drained; its groups move to other nodes`);
      } else {
        await c.delete().key(k.drain(node)).exec();
        io.out(`${node}: undrained`);
      }
      return 0;
    });
  };
}

const validate: Command = async (args, _o, io, extra) => {
  if (args.length === 0) throw new UsageError('validate: name at least one file');
  const results = (await Promise.all(args.map((f) => validateFile(f, extra)))).flat();
  for (const line of renderValidation(results)) io.out(line);
  const bad = results.filter((r) => r.problems.length > 0).length;
  if (bad > 0) io.err(`vipwarden: ${bad} of ${results.length} document(s) are not valid`);
  return bad > 0 ? 1 : 0;
};

const COMMANDS: Record<string, Command> = {
  status,
  events,
  move,
  drain: drain('drain'),
  undrain: drain('undrain'),
  validate,
};

export async function run(argv: string[], env: NodeJS.ProcessEnv, io: CliIO): Promise<number> {
  try {
    if (argv.length === 0) throw new UsageError('');
    if (argv[0] === 'realserver') return await (await import('./realserver.js')).realserver(argv.slice(1), io); // lvs
    if (argv[0] === 'help') {
      io.out(USAGE);
      return 0;
    }
    const parsed = parseCli(argv, env);
    if (parsed === 'help') {
      io.out(USAGE);
      return 0;
    }
    if (parsed === 'version') {
      io.out(versionLine('vipwarden'));
      return 0;
    }
    const [cmd, ...args] = parsed.options.positional;
    if (!cmd) throw new UsageError('');
    const command = COMMANDS[cmd];
    if (!command) throw new UsageError(`unknown command ${cmd}`);
    if (parsed.node !== undefined && cmd !== 'validate') throw new UsageError('--node only goes with validate');
    return await command(args, parsed.options, io, {
      node: parsed.node ?? env.VIPWARDEN_NODE,
    });
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message) io.err(`vipwarden: ${err.message}`);
      io.err(USAGE);
      return 2;
    }
    io.err(`vipwarden: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
