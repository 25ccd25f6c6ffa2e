// The kernel settings a director needs once it directs a service (docs/lvs.md says what each one is for).
import type { Exec } from '../../common/exec.js';
import type { Logger } from '../../common/log.js';
import type { DesiredService } from './planner.js';

/** The IPVS settings, and forwarding where a service uses NAT. Tuning, not a reason to give the group up: a failure is logged. */
export async function applyIpvsSysctls(exec: Exec, log: Logger, services: DesiredService[]): Promise<void> {
  const settings = [
    // A quiesced (weight 0) server's persistence templates expire instead of sending clients back to it.
    'net.ipv4.vs.expire_quiescent_template=1',
    // Packets of connections to a removed real server are dropped and the connection expired, so that the
    // client's retry is scheduled anew instead of hanging.
    'net.ipv4.vs.expire_nodest_conn=1',
  ];
  if (services.some((s) => s.dests.some((d) => d.forwarding === 'nat'))) settings.push('net.ipv4.ip_forward=1');
  if (services.some((s) => s.address.includes(':') && s.dests.some((d) => d.forwarding === 'nat')))
    settings.push('net.ipv6.conf.all.forwarding=1');
  await exec(['sysctl', '-q', '-w', ...settings], { timeoutMs: 5000 }).catch((err: unknown) =>
    log.warn({ err, settings }, 'could not apply the IPVS kernel settings'),
  );
}
