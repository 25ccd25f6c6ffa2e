// Command lines of vipwarden, vipwarden-agent and vipwarden-controller: node:util parseArgs, strict (an unknown or
// misspelt flag is an error, never silently ignored), with --help and --version on every command.
import { parseArgs } from 'node:util';
import { VERSION } from './version.js';

/** A mistake in the command line: printed with the usage, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
}
export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S['type'] extends 'string'
  ? S extends { multiple: true }
    ? string[]
    : string
  : S extends { multiple: true }
    ? boolean[]
    : boolean;
export type OptionValues<T extends OptionSpecs> = { [K in keyof T]?: ValueOf<T[K]> };

export type CommandLine<T extends OptionSpecs> =
  { kind: 'help' } | { kind: 'version' } | { kind: 'run'; values: OptionValues<T>; positionals: string[] };

const COMMON = { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } } as const;

/** Parses argv (without node and the script). Throws UsageError with a one-line reason. */
export function parseCommandLine<T extends OptionSpecs>(
  argv: readonly string[],
  options: T,
  opts: { positionals?: boolean } = {},
): CommandLine<T> {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinDashValues(argv, options),
      options: { ...options, ...COMMON },
      strict: true,
      allowPositionals: opts.positionals ?? false,
    });
  } catch (err) {
    throw new UsageError(usageReason(err));
  }
  const values = parsed.values as Record<string, unknown>;
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  delete values.help;
  delete values.version;
  return { kind: 'run', values: values as OptionValues<T>, positionals: parsed.positionals };
}

/**
 * `--timeout -5`: node:util refuses a value that starts with a dash as ambiguous. Unless it is one of our options,
 * it is the value, so that the option's own check can say what is wrong with it.
 */
function joinDashValues(argv: readonly string[], options: OptionSpecs): string[] {
  const byShort = new Map(Object.entries(options).flatMap(([k, v]) => (v.short ? [[v.short, k] as const] : [])));
  const known = (a: string) =>
    a === '--' || a.startsWith('--')
      ? a === '--' || a.slice(2).split('=')[0]! in options || a.slice(2) in COMMON
      : byShort.has(a.slice(1, 2)) || a === '-h';
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.startsWith('--') ? a.slice(2) : a.length === 2 && a.startsWith('-') ? byShort.get(a[1]!) : undefined;
    const next = argv[i + 1];
    if (name && !a.includes('=') && options[name]?.type === 'string' && next?.startsWith('-') && !known(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** node:util's messages, shortened to what the operator needs. */
function usageReason(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  const option = /'(-[^' ,]+)/.exec(msg)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? msg}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /argument missing|ambiguous/.test(msg) ? `${option ?? 'an option'} needs a value` : msg;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']+)'/.exec(msg)?.[1] ?? msg}`;
    default:
      return msg;
  }
}

export function versionLine(name: string): string {
  return `${name} ${VERSION}`;
}

/**
 * The start of a daemon's main(): --help and --version print and exit 0; a usage error prints one line and the
 * usage and exits 2. Otherwise returns the options.
 */
export function daemonCommandLine<T extends OptionSpecs>(
  name: string,
  usage: string,
  argv: readonly string[],
  options: T,
): OptionValues<T> {
  let cl: CommandLine<T>;
  try {
    cl = parseCommandLine(argv, options);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${name}: ${err.message}\n${usage}\n`);
    process.exit(2);
  }
  if (cl.kind === 'help') {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  if (cl.kind === 'version') {
    process.stdout.write(`${versionLine(name)}\n`);
    process.exit(0);
  }
  return cl.values;
}
