// pino JSON logs; human-readable with VIPWARDEN_LOG_PRETTY=1 (the demo sets it).
// pino-pretty is a stream in this process, not a pino transport: a transport loads its worker from a file in
// node_modules, which the single executables (hack/package/sea.sh) do not have.
import { pino, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger };

export function createLogger(opts: {
  name: string;
  level?: string;
  pretty?: boolean;
  base?: Record<string, unknown>;
}): Logger {
  const pretty = opts.pretty ?? process.env.VIPWARDEN_LOG_PRETTY === '1';
  const options = {
    name: opts.name,
    level: opts.level ?? process.env.VIPWARDEN_LOG_LEVEL ?? 'info',
    base: { pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (!pretty) return pino(options);
  return pino(
    options,
    pinoPretty({ colorize: false, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', sync: true }),
  );
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
