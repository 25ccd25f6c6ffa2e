// `vipwarden validate FILE...`: FailoverGroups, agent and controller configs checked offline, through the same
// parses the controller and the agent run, every bad field named.
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { parseFailoverGroup } from '../crds/failovergroup.js';
import { issuesOf } from '../common/validation.js';
import { AgentConfigSchema } from '../node-agent/config.js';
import { ControllerConfigSchema } from '../controller/config.js';

export type DocKind = 'FailoverGroup' | 'agent config' | 'controller config';

export interface DocResult {
  file: string;
  /** Document index in a multi-document file. */
  index: number;
  kind?: DocKind;
  name?: string;
  /** One line per bad field ("spec.nodes[0].name: ..."), empty when the document is valid. */
  problems: string[];
}

const CONTROLLER_ONLY = ['source', 'kernelSlackMs', 'settleMs', 'resyncMs', 'eventsPerGroup', 'id'];
const AGENT_ONLY = [
  'node',
  'interface',
  'commands',
  'hooks',
  'credentials',
  'announce',
  'stateDir',
  'shutdownGraceMs',
  'deadlineExec',
  'cloud',
];

/** What a document is: a FailoverGroup by its kind, a config by the fields only one of them has. */
export function kindOf(doc: unknown): DocKind | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const o = doc as Record<string, unknown>;
  if ('kind' in o || 'apiVersion' in o) return 'FailoverGroup';
  if (CONTROLLER_ONLY.some((k) => k in o)) return 'controller config';
  if (AGENT_ONLY.some((k) => k in o)) return 'agent config';
  return undefined;
}

/** Pure: one file's text to a result per document. `node` stands in for an agent config's missing `node:`. */
export function validateText(file: string, text: string, opts: { node?: string } = {}): DocResult[] {
  let docs;
  try {
    docs = parseAllDocuments(text);
  } catch (e) {
    return [{ file, index: 0, problems: [`not YAML: ${e instanceof Error ? e.message : String(e)}`] }];
  }
  const list = Array.isArray(docs) ? docs : [docs];
  const out: DocResult[] = [];
  list.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      out.push({ file, index, problems: doc.errors.map((e) => `not YAML: ${e.message.split('\n')[0]}`) });
      return;
    }
    const raw = doc.toJS() as unknown;
    if (raw === null || raw === undefined) return;
    const kind = kindOf(raw);
    if (!kind) {
      out.push({
        file,
        index,
        problems: ['not a FailoverGroup (no kind), nor an agent or controller config (none of their fields)'],
      });
      return;
    }
    if (kind === 'FailoverGroup') {
      const r = parseFailoverGroup(raw, file);
      const name = (raw as { metadata?: { name?: unknown } }).metadata?.name;
      out.push({
        file,
        index,
        kind,
        ...(typeof name === 'string' ? { name } : {}),
        problems: r.ok ? [] : r.error.issues.map((i) => `${i.path}: ${i.message}`),
      });
      return;
    }
    const schema = kind === 'agent config' ? AgentConfigSchema : ControllerConfigSchema;
    const input =
      kind === 'agent config' && opts.node !== undefined && !('node' in (raw as object))
        ? { ...(raw as object), node: opts.node }
        : raw;
    const r = schema.safeParse(input);
    out.push({
      file,
      index,
      kind,
      problems: r.success ? [] : issuesOf(r.error).map((i) => `${i.path}: ${i.message}`),
    });
  });
  if (out.length === 0) out.push({ file, index: 0, problems: ['no document in the file'] });
  return out;
}

export async function validateFile(file: string, opts: { node?: string } = {}): Promise<DocResult[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return [{ file, index: 0, problems: [code === 'ENOENT' ? 'no such file' : `cannot read: ${code ?? String(err)}`] }];
  }
  return validateText(file, text, opts);
}

/** Lines for the operator: "FILE: ok (FailoverGroup web)" or "FILE[#n]: KIND NAME: path: message" per problem. */
export function renderValidation(results: readonly DocResult[]): string[] {
  const multi = new Set(results.filter((r) => r.index > 0).map((r) => r.file));
  return results.flatMap((r) => {
    const where = multi.has(r.file) ? `${r.file}#${r.index}` : r.file;
    const what = [r.kind, r.name].filter(Boolean).join(' ');
    if (r.problems.length === 0) return [`${where}: ok (${what})`];
    return r.problems.map((p) => `${where}: ${what ? `${what}: ` : ''}${p}`);
  });
}
