// Table tests for the directory source's pure parts: files to documents (parseGroupFile) and documents to groups
// (mergeFiles). A bad document never stops the others; a group whose new version is invalid keeps its last valid
// spec and carries the error; the same name twice: the first file by path wins and the clash is reported.
import { describe, expect, test } from '@jest/globals';
import { parseFailoverGroup, type FailoverGroup } from '../../crds/failovergroup.js';
import { mergeFiles, parseGroupFile, type ParsedFile } from './directory.js';

function yamlGroup(name: string, address = '198.18.0.100/24', extra = ''): string {
  return `apiVersion: vipwarden.io/v1alpha1
kind: FailoverGroup
metadata:
  name: ${name}
spec:
  vips:
    - address: ${address}
  nodes:
    - name: node-a
      priority: 200
    - name: node-b
${extra}`;
}

function model(name: string, address = '198.18.0.100/24'): FailoverGroup {
  const r = parseFailoverGroup({
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name },
    spec: { vips: [{ address }], nodes: [{ name: 'node-a', priority: 200 }, { name: 'node-b' }] },
  });
  if (!r.ok) throw r.error;
  return r.group;
}

const summary = (f: ParsedFile) =>
  f.docs.map((d) => ({ name: d.name, ok: d.group !== undefined, error: d.error?.message }));

describe('parseGroupFile', () => {
  test('one document', () => {
    const f = parseGroupFile('/etc/vipwarden/groups/web.yaml', yamlGroup('web'));
    expect(f.path).toBe('/etc/vipwarden/groups/web.yaml');
    expect(f.docs).toEqual([{ name: 'web', group: model('web') }]);
  });

  test('multi-document file, empty documents skipped', () => {
    const text = [
      '---',
      yamlGroup('web', '198.18.0.100/24'),
      '---',
      '# nothing here',
      '---',
      yamlGroup('db', '198.18.0.101/24'),
      '---',
      '',
    ].join('\n');
    const f = parseGroupFile('g.yaml', text);
    expect(f.docs).toEqual([
      { name: 'web', group: model('web', '198.18.0.100/24') },
      { name: 'db', group: model('db', '198.18.0.101/24') },
    ]);
  });

  test('a schema-invalid document does not stop the others; its error names the document and the field', () => {
    const text = [
      yamlGroup('web'),
      '---',
      yamlGroup('bad', '198.18.0.300/24'),
      '---',
      yamlGroup('db', '198.18.0.101/24'),
    ].join('\n');
    const f = parseGroupFile('g.yaml', text);
    expect(summary(f)).toEqual([
      { name: 'web', ok: true, error: undefined },
      { name: 'bad', ok: false, error: expect.stringMatching(/^g\.yaml#1 bad: spec\.vips\[0\]\.address: /) },
      { name: 'db', ok: true, error: undefined },
    ]);
  });

  test('a YAML syntax error in one document does not stop the others', () => {
    const text = [
      yamlGroup('web'),
      '---',
      'metadata: {name: broken',
      'spec: [',
      '---',
      yamlGroup('db', '198.18.0.101/24'),
    ].join('\n');
    const f = parseGroupFile('g.yaml', text);
    const s = summary(f);
    expect(s[0]).toEqual({ name: 'web', ok: true, error: undefined });
    expect(s[1]).toEqual({ name: undefined, ok: false, error: expect.stringMatching(/^g\.yaml#1: \(yaml\): /) });
    expect(s[2]).toEqual({ name: 'db', ok: true, error: undefined });
    expect(s).toHaveLength(3);
  });

  test.each([
    ['not a mapping', 'just text', undefined],
    ['a list', '- a\n- b', undefined],
    ['no metadata', 'apiVersion: vipwarden.io/v1alpha1\nkind: FailoverGroup\nspec: {}', undefined],
    ['a name that is not a string', yamlGroup('web').replace('name: web', 'name: 42'), undefined],
    ['another kind', yamlGroup('web').replace('kind: FailoverGroup', 'kind: ConfigMap'), 'web'],
  ])('an invalid document (%s) carries an error and its name if it has one', (_name, text, name) => {
    const f = parseGroupFile('x.yaml', text);
    expect(f.docs).toHaveLength(1);
    expect(f.docs[0]?.name).toBe(name);
    expect(f.docs[0]?.group).toBeUndefined();
    expect(f.docs[0]?.error?.message).toMatch(/^x\.yaml#0/);
  });

  test('an empty file has no documents', () => {
    expect(parseGroupFile('e.yaml', '').docs).toEqual([]);
    expect(parseGroupFile('e.yaml', '# only a comment\n').docs).toEqual([]);
  });

  test('JSON is YAML', () => {
    const json = JSON.stringify({
      apiVersion: 'vipwarden.io/v1alpha1',
      kind: 'FailoverGroup',
      metadata: { name: 'web' },
      spec: { vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'node-a', priority: 200 }, { name: 'node-b' }] },
    });
    expect(parseGroupFile('web.json', json).docs).toEqual([{ name: 'web', group: model('web') }]);
  });
});

describe('mergeFiles', () => {
  const none = new Map<string, FailoverGroup>();
  const created = new Map([
    ['web', 10],
    ['db', 20],
  ]);

  test('groups from several files, with createdAt', () => {
    const r = mergeFiles(
      [parseGroupFile('b.yaml', yamlGroup('db', '198.18.0.101/24')), parseGroupFile('a.yaml', yamlGroup('web'))],
      none,
      created,
    );
    expect(r.errors).toEqual([]);
    expect(r.groups).toEqual([
      { name: 'web', group: model('web'), error: undefined, createdAt: 10 },
      { name: 'db', group: model('db', '198.18.0.101/24'), error: undefined, createdAt: 20 },
    ]);
  });

  test('a group whose new version is invalid keeps its last valid spec and carries the error', () => {
    const lastGood = new Map([['web', model('web')]]);
    const f = parseGroupFile('a.yaml', yamlGroup('web', '198.18.0.100/33'));
    const r = mergeFiles([f], lastGood, created);
    expect(r.errors).toEqual([]);
    expect(r.groups).toHaveLength(1);
    const g = r.groups[0]!;
    expect(g.name).toBe('web');
    expect(g.group).toEqual(model('web'));
    expect(g.error?.message).toMatch(/spec\.vips\[0\]\.address: IPv4 prefix length must be 1\.\.32/);
  });

  test('an invalid group never valid before: no group, the error carried', () => {
    const r = mergeFiles([parseGroupFile('a.yaml', yamlGroup('web', 'nope'))], none, created);
    expect(r.groups).toEqual([{ name: 'web', group: undefined, error: expect.anything(), createdAt: 10 }]);
  });

  test('a document without a name is reported in errors, the others are kept', () => {
    const f = parseGroupFile('a.yaml', ['just text', '---', yamlGroup('web')].join('\n'));
    const r = mergeFiles([f], none, created);
    expect(r.groups.map((g) => g.name)).toEqual(['web']);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]?.message).toMatch(/^a\.yaml#0/);
  });

  test('duplicate names across files: the first by path wins, the clash is reported', () => {
    const files = [
      parseGroupFile('/d/20-other.yaml', yamlGroup('web', '198.18.0.200/24')),
      parseGroupFile('/d/10-web.yaml', yamlGroup('web', '198.18.0.100/24')),
    ];
    const r = mergeFiles(files, none, created);
    expect(r.groups).toEqual([
      { name: 'web', group: model('web', '198.18.0.100/24'), error: undefined, createdAt: 10 },
    ]);
    expect(r.errors.map((e) => e.message)).toEqual([
      '/d/20-other.yaml: metadata.name: group "web" is defined twice; the first definition wins',
    ]);
    // The same whatever order the files come in.
    expect(mergeFiles([...files].reverse(), none, created)).toEqual(r);
  });

  test('duplicate names within one file: the first document wins', () => {
    const r = mergeFiles(
      [
        parseGroupFile(
          'a.yaml',
          [yamlGroup('web', '198.18.0.100/24'), '---', yamlGroup('web', '198.18.0.200/24')].join('\n'),
        ),
      ],
      none,
      created,
    );
    expect(r.groups.map((g) => g.group?.spec.vips[0]?.address)).toEqual(['198.18.0.100/24']);
    expect(r.errors).toHaveLength(1);
  });

  test('an invalid first definition still wins the name (with its last valid spec)', () => {
    const lastGood = new Map([['web', model('web', '198.18.0.100/24')]]);
    const files = [
      parseGroupFile('a.yaml', yamlGroup('web', 'bad')),
      parseGroupFile('b.yaml', yamlGroup('web', '198.18.0.200/24')),
    ];
    const r = mergeFiles(files, lastGood, created);
    expect(r.groups).toHaveLength(1);
    expect(r.groups[0]?.group).toEqual(model('web', '198.18.0.100/24'));
    expect(r.groups[0]?.error).toBeDefined();
    expect(r.errors.map((e) => e.message)).toEqual([
      'b.yaml: metadata.name: group "web" is defined twice; the first definition wins',
    ]);
  });

  test('a group whose file is gone is gone', () => {
    const lastGood = new Map([['web', model('web')]]);
    expect(mergeFiles([], lastGood, created)).toEqual({ groups: [], errors: [] });
  });
});
