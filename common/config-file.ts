// Reading a YAML config file, with one-line errors an operator can act on (not a raw ENOENT and its stack).
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';

/** A config file that cannot be read or is not YAML: the message is the whole story. */
export class ConfigFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

export async function readYamlFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigFileError(`${what} ${path} does not exist (give another with --config)`);
    if (code === 'EACCES') throw new ConfigFileError(`${what} ${path} is not readable by this user`);
    if (code === 'EISDIR') throw new ConfigFileError(`${what} ${path} is a directory, not a file`);
    throw new ConfigFileError(`cannot read ${what} ${path}: ${code ?? String(err)}`);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw new ConfigFileError(`${path}: not valid YAML: ${first}`);
  }
}
