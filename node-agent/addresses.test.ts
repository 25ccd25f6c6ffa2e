import type { Exec, ExecOptions } from '../common/exec.js';
import { AddressManager, vipRef } from './addresses.js';

function recorder() {
  const calls: { argv: string[]; opts?: ExecOptions }[] = [];
  const exec: Exec = async (argv, opts) => {
    calls.push({ argv: [...argv], opts });
    return { stdout: '[]', stderr: '', exitCode: 0 };
  };
  return { exec, calls };
}

describe('AddressManager batches', () => {
  const vips = [vipRef('198.18.5.100/24', 'eth0'), vipRef('2001:2:0:5::100/64', 'eth0')];

  it('adds IPv4 and IPv6 VIPs in one ip -batch, IPv6 with nodad, no per-line options', async () => {
    const r = recorder();
    await new AddressManager(r.exec).ensure(vips, 3);
    expect(r.calls[0]!.argv).toEqual(['ip', '-batch', '-']);
    // ip -batch rejects "-6" at the start of a line ('Object "-6" is unknown'): the address says the family.
    expect(r.calls[0]!.opts?.input).toBe(
      'addr replace 198.18.5.100/24 dev eth0 valid_lft 3 preferred_lft 3\naddr replace 2001:2:0:5::100/64 dev eth0 valid_lft 3 preferred_lft 3 nodad\n',
    );
  });

  it('removes them in one forced batch', async () => {
    const r = recorder();
    await new AddressManager(r.exec).remove(vips);
    expect(r.calls[0]!.argv).toEqual(['ip', '-force', '-batch', '-']);
    expect(r.calls[0]!.opts?.input).toBe('addr del 198.18.5.100/24 dev eth0\naddr del 2001:2:0:5::100/64 dev eth0\n');
  });
});
