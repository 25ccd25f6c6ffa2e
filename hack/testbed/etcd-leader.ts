// Which member of a throw-away etcd cluster leads: `etcdctl endpoint status` on the running members.
import { inNetns, run } from './util.js';

/** Index in `all` of the member that reports itself as the raft leader; -1 when none does (or none answers). */
export async function leaderIndex(
  etcdctl: string,
  tlsFlags: string[],
  running: string[],
  all: string[],
  netns?: string,
): Promise<number> {
  if (running.length === 0) return -1;
  const argv = [etcdctl, ...tlsFlags, `--endpoints=${running.join(',')}`, '--command-timeout=2s'];
  const r = await run(inNetns(netns, [...argv, 'endpoint', 'status', '-w', 'json']), {
    allowFailure: true,
    timeoutMs: 5000,
  });
  // Member ids are uint64, beyond a JSON number's precision: read them as strings.
  const text = r.stdout.replace(/"(member_id|leader|cluster_id|raft_term)":(\d+)/g, '"$1":"$2"');
  let rows: { Endpoint?: string; Status?: { header?: { member_id?: string }; leader?: string } }[] = [];
  try {
    rows = JSON.parse(text) as typeof rows;
  } catch {
    return -1;
  }
  const lead = rows.find((x) => x.Status?.leader !== undefined && x.Status.header?.member_id === x.Status.leader);
  return lead?.Endpoint === undefined ? -1 : all.indexOf(lead.Endpoint);
  return -1;
}
