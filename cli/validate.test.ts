import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './main.js';
import { kindOf, renderValidation, validateText } from './validate.js';
import { memoryIo } from './test-io.js';

const REPO = join(import.meta.dirname, '..');

const io = memoryIo;

describe('validate', () => {
  it('tells the three kinds apart', () => {
    expect(kindOf({ apiVersion: 'vipwarden.io/v1alpha1', kind: 'FailoverGroup' })).toBe('FailoverGroup');
    expect(kindOf({ etcd: {}, source: { directory: '/x' } })).toBe('controller config');
    expect(kindOf({ node: 'a', etcd: {} })).toBe('agent config');
    expect(kindOf({ etcd: {} })).toBeUndefined();
  });

  it.each([
    'deploy/examples/web.yaml',
    'deploy/examples/mysql.yaml',
    'deploy/examples/dual-stack.yaml',
    'deploy/etc/vipwarden/agent.yaml',
    'deploy/etc/vipwarden/controller.yaml',
  ])('the shipped %s is valid', (file) => {
    const r = validateText(file, readFileSync(join(REPO, file), 'utf8'));
    expect(r.flatMap((d) => d.problems)).toEqual([]);
    expect(r.length).toBeGreaterThan(0);
  });

  it('names every bad field of a FailoverGroup', () => {
    const text = [
      'apiVersion: vipwarden.io/v1alpha1',
      'kind: FailoverGroup',
      'metadata: { name: web }',
      'spec:',
      '  vips: [{ address: 198.18.0.100 }]',
      '  nodes: [{ name: Node_1, priority: 100 }]',
    ].join('\n');
    const [r] = validateText('web.yaml', text);
    expect(r!.kind).toBe('FailoverGroup');
    expect(r!.name).toBe('web');
    expect(r!.problems.some((p) => p.startsWith('spec.vips[0].address: '))).toBe(true);
    expect(r!.problems.some((p) => p.startsWith('spec.nodes[0].name: '))).toBe(true);
  });

  it('names the bad fields of agent and controller configs, and takes --node for a missing node:', () => {
    const agent = "etcd: { endpoints: ['http://127.0.0.1:2379'] }\ninterface: 'bad name!'\nlease: { ttlSeconds: 0 }\n";
    const [a] = validateText('agent.yaml', agent);
    expect(a!.kind).toBe('agent config');
    expect(a!.problems.map((p) => p.split(':')[0])).toEqual(
      expect.arrayContaining(['node', 'interface', 'lease.ttlSeconds']),
    );
    const [b] = validateText('agent.yaml', "etcd: { endpoints: ['http://127.0.0.1:2379'] }\ninterface: eth0\n", {
      node: 'node1',
    });
    expect(b!.problems).toEqual([]);
    const [c] = validateText(
      'controller.yaml',
      "etcd: { endpoints: ['x'] }\nsource: { directory: /etc/g }\nsettleMs: -1\n",
    );
    expect(c!.kind).toBe('controller config');
    expect(c!.problems.map((p) => p.split(':')[0])).toEqual(['etcd.endpoints[0]', 'settleMs']);
  });

  it('reports each document of a multi-document file, and what is not YAML', () => {
    const r = validateText('two.yaml', 'node: a\n---\nfoo: 1\n');
    expect(renderValidation(r)).toEqual([
      expect.stringMatching(/^two\.yaml#0: agent config: etcd: /),
      'two.yaml#1: not a FailoverGroup (no kind), nor an agent or controller config (none of their fields)',
    ]);
    expect(validateText('bad.yaml', 'a: [1\n')[0]!.problems[0]).toMatch(/^not YAML: /);
  });

  it('vipwarden validate: exit 0 when all are valid, 1 with every problem named, 2 without a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vw-validate-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: vipwarden.io/v1alpha1\nkind: FailoverGroup\nmetadata: { name: web }\nspec: {}\n');
    const ok = io();
    expect(await run(['validate', join(REPO, 'deploy/examples/web.yaml')], {}, ok.io)).toBe(0);
    expect(ok.out).toEqual([`${join(REPO, 'deploy/examples/web.yaml')}: ok (FailoverGroup web)`]);
    const b = io();
    expect(await run(['validate', join(REPO, 'deploy/examples/web.yaml'), bad, join(dir, 'none.yaml')], {}, b.io)).toBe(
      1,
    );
    expect(b.out.filter((l) => l.startsWith(`${bad}: FailoverGroup web: spec.`)).length).toBeGreaterThan(0);
    expect(b.out).toContain(`${join(dir, 'none.yaml')}: no such file`);
    expect(b.err).toEqual([expect.stringMatching(/^vipwarden: 2 of \d+ document\(s\) are not valid$/)]);
    const c = io();
    expect(await run(['validate'], {}, c.io)).toBe(2);
    expect(c.err[0]).toBe('vipwarden: validate: name at least one file');
  });
});
