import { readFile, readdir } from 'node:fs/promises';
import type { CheckFn } from './types.js';

async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A zombie is not a running service.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return stat !== '' && state !== 'Z' && state !== 'X';
}

/** The process named by a pid file is alive, or a process with that comm name exists. */
export const processCheck: CheckFn = async (spec) => {
  const p = spec.process;
  if (!p) return { ok: false, message: 'process settings missing' };
  if (p.pidFile) {
    const text = await readFile(p.pidFile, 'utf8').catch(() => undefined);
    const pid = text ? Number.parseInt(text.trim(), 10) : NaN;
    if (!Number.isInteger(pid) || pid <= 0) return { ok: false, message: `no pid in ${p.pidFile}` };
    if (!(await alive(pid))) return { ok: false, message: `pid ${pid} is not running` };
    if (!p.name) return { ok: true, message: `pid ${pid} running` };
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    return comm === p.name
      ? { ok: true, message: `pid ${pid} running` }
      : { ok: false, message: `pid ${pid} is ${comm}, not ${p.name}` };
  }
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const comm = (await readFile(`/proc/${d}/comm`, 'utf8').catch(() => '')).trim();
    if (comm === p.name && (await alive(Number(d)))) return { ok: true, message: `pid ${d} running` };
  }
  return { ok: false, message: `no process named ${p.name}` };
};
