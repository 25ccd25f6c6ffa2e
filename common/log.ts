// pino JSON logs; human-readable with VIPWARDEN_LOG_PRETTY=1 (the demo sets it).
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: {
  name: string;
  level?: string;
  pretty?: boolean;
  base?: Record<string, unknown>;
}): Logger {
  const pretty = opts.pretty ?? process.env.VIPWARDEN_LOG_PRETTY === '1';
  return pino({
    name: opts.name,
    level: opts.level ?? process.env.VIPWARDEN_LOG_LEVEL ?? 'info',
    base: { pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...(pretty
      ? {
          transport: {
            target: 'pino-pretty',
            options: { colorize: false, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
          },
        }
      : {}),
  });
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
