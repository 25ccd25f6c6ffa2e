// The cgroup tree of a kubelet node (hack/kube/node.ts): v1 here, where each hierarchy gets the same path, as the
// kubelet's cgroupfs driver expects. Everything of a node runs in it, containers included, so emptying it stops all.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CGROUP_FS = '/sys/fs/cgroup';

function hierarchies(): string[] {
  return readdirSync(CGROUP_FS)
    .map((h) => join(CGROUP_FS, h))
    .filter((h) => existsSync(join(h, 'cgroup.procs')) && !existsSync(join(h, 'cgroup.controllers')));
}

/** This process's memory cgroup (the sandbox may have put it in one): the node's tree goes under it. */
export function ownCgroupBase(): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => /^\d+:memory:/.test(l));
  return line ? line.replace(/^\d+:memory:/, '').replace(/\/$/, '') : '';
}

export function makeCgroup(path: string): void {
  for (const h of hierarchies()) {
    let cur = h;
    for (const part of path.split('/').filter(Boolean)) {
      const parent = cur;
      cur = join(cur, part);
      if (existsSync(cur)) continue;
      mkdirSync(cur);
      // cpuset: a new cgroup has no CPUs or memory nodes until given its parent's.
      for (const f of ['cpuset.cpus', 'cpuset.mems'])
        if (existsSync(join(cur, f))) writeFileSync(join(cur, f), readFileSync(join(parent, f)));
    }
  }
}

function cgroupPids(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const own = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  const subs = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory());
  return [...own, ...subs.flatMap((d) => cgroupPids(join(dir, d.name)))];
}

function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) removeCgroupTree(join(dir, d.name));
  try {
    rmdirSync(dir);
  } catch {
    // still busy: the caller reports what is left
  }
}

/** SIGKILL to every process in the tree until it is empty (bounded), then the tree goes from every hierarchy. */
export function destroyCgroup(path: string): void {
  const pidsDir = join(CGROUP_FS, 'pids', path);
  for (let i = 0; i < 50; i++) {
    const pids = cgroupPids(pidsDir);
    if (pids.length === 0) break;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  for (const h of hierarchies()) removeCgroupTree(join(h, path));
}
