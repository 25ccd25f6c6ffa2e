// A stand-in for /usr/sbin/ipvsadm on machines whose kernel has no IPVS (CONFIG_IP_VS unset), for the e2e tier:
// the table of each network namespace lives in $VIPWARDEN_FAKE_IPVS_DIR/<netns inode>.json and answers exactly as
// FakeIpvs does (fake-ipvsadm.ts). Never installed or used outside tests.
import { readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError } from '../../common/exec.js';
import { FakeIpvs } from './fake-ipvsadm.js';

async function main(): Promise<number> {
  const dir = process.env.VIPWARDEN_FAKE_IPVS_DIR;
  if (!dir) {
    console.error('fake ipvsadm: VIPWARDEN_FAKE_IPVS_DIR is not set');
    return 2;
  }
  const ns = readlinkSync('/proc/self/ns/net').replace(/\D/g, '');
  const path = join(dir, `${ns}.json`);
  let state = {};
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as object;
  } catch {
    /* a fresh namespace: empty table */
  }
  const fake = FakeIpvs.from(state);
  const args = process.argv.slice(2);
  const input = args[0] === '-R' ? readFileSync(0, 'utf8') : undefined;
  try {
    const r = await fake.exec(['ipvsadm', ...args], { input });
    if (r.stdout) process.stdout.write(r.stdout + '\n');
    return 0;
  } catch (err) {
    process.stderr.write((err instanceof CommandError ? err.stderr : String(err)) + '\n');
    return err instanceof CommandError ? (err.exitCode ?? 1) : 1;
  } finally {
    // Listings write nothing back: a listing that runs beside a change must not undo it.
    if (args[0] !== '-Sn' && args[0] !== '-Ln') {
      writeFileSync(`${path}.tmp`, JSON.stringify(fake.toJSON()));
      renameSync(`${path}.tmp`, path);
    }
  }
}

main().then((code) => process.exit(code));
