import { describe, expect, it } from '@jest/globals';
import { CommandError, type Exec } from '../common/exec.js';
import { planRealServer, realserver } from './realserver.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

describe('vipwarden realserver', () => {
  it('puts an IPv4 VIP on lo with ARP suppressed (DR)', () => {
    expect(planRealServer('add', ['198.18.0.100'], false).commands).toEqual([
      [
        'sysctl',
        '-q',
        '-w',
        'net.ipv4.conf.all.arp_ignore=1',
        'net.ipv4.conf.all.arp_announce=2',
        'net.ipv4.conf.lo.arp_ignore=1',
        'net.ipv4.conf.lo.arp_announce=2',
      ],
      ['ip', 'addr', 'replace', '198.18.0.100/32', 'dev', 'lo'],
    ]);
  });

  it('uses tunl0 and turns rp_filter off for tunnel mode; IPv6 goes on lo as /128 without DAD', () => {
    const t = planRealServer('add', ['198.18.0.100'], true).commands;
    expect(t[0]).toEqual(['modprobe', 'ipip']);
    expect(t.at(-2)).toContain('net.ipv4.conf.tunl0.rp_filter=0');
    expect(t.at(-1)).toEqual(['ip', 'addr', 'replace', '198.18.0.100/32', 'dev', 'tunl0']);
    expect(planRealServer('add', ['2001:2:0::100'], false).commands).toEqual([
      ['ip', '-6', 'addr', 'replace', '2001:2::100/128', 'dev', 'lo', 'nodad'],
    ]);
    expect(planRealServer('remove', ['198.18.0.100'], false).commands).toEqual([
      ['ip', 'addr', 'del', '198.18.0.100/32', 'dev', 'lo'],
    ]);
  });

  it('runs the commands; removing an address that is gone is fine; bad input is a usage error', async () => {
    const ran: string[][] = [];
    const exec: Exec = async (argv) => {
      ran.push([...argv]);
      if (argv[2] === 'del') throw new CommandError(argv, 2, 'RTNETLINK answers: Cannot assign requested address');
      return { stdout: '', stderr: '', exitCode: 0 };
    };
    const a = io();
    expect(await realserver(['add', '198.18.0.100'], a.io, exec)).toBe(0);
    expect(ran).toHaveLength(2);
    expect(await realserver(['remove', '198.18.0.100'], a.io, exec)).toBe(0);
    const b = io();
    expect(await realserver(['add', '198.18.0.100/24'], b.io, exec)).toBe(2);
    expect(b.err[0]).toMatch(/not an IP address/);
    const c = io();
    expect(await realserver(['add', '198.18.0.100', '--dry-run'], c.io, exec)).toBe(0);
    expect(c.out.at(-1)).toBe('ip addr replace 198.18.0.100/32 dev lo');
    expect(ran).toHaveLength(3);
  });
});
