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
      args: [...argv],
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

/** node:util's messages, shortened to what the operator needs. */
function usageReason(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  const option = /'(-[^' ]+)/.exec(msg)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? msg}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /argument missing/.test(msg) ? `${option ?? 'an option'} needs a value` : msg;
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
