// Where the real vipwarden-dataplane comes from and how it is started (dataplane.ts talks to it).
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DATAPLANE, type HelperProcess, type SpawnHelper } from './dataplane-protocol.js';

/** The helper built by `npm run build` next to this module (dist/node-agent/vipwarden-dataplane). */
export function nativeHelperPath(): string {
  return fileURLToPath(new URL(`./${DATAPLANE}`, import.meta.url));
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Starts the real helper in this process's network namespace; it neither keeps Node alive nor outlives it. */
export function spawnNative(bin: string): SpawnHelper {
  return () => {
    const child = spawn(bin, [String(process.pid)], { stdio: ['pipe', 'pipe', 'inherit'] });
    child.unref();
    const unref = (s: unknown) => (s as { unref?: () => void } | null)?.unref?.();
    unref(child.stdin);
    unref(child.stdout);
    return child as HelperProcess;
  };
}
