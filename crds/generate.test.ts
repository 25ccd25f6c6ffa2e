import { z } from 'zod';
import { CRD_OUTPUTS, crd, openApiSchema, staleOutputs, toStructural, type OpenApiSchema } from './generate.js';

test('the checked-in CRD YAML is what the zod schema generates (run "npm run build && npm run crds" when this fails)', () => {
  expect(staleOutputs()).toEqual([]);
  expect(CRD_OUTPUTS).toContain('crds/failovergroup.crd.yaml');
});

/** Every schema node, with its path. */
function* walk(s: OpenApiSchema, path = ''): Generator<[string, OpenApiSchema]> {
  yield [path, s];
  for (const [k, v] of Object.entries((s.properties as Record<string, OpenApiSchema>) ?? {}))
    yield* walk(v, path ? `${path}.${k}` : k);
  if (s.items) yield* walk(s.items as OpenApiSchema, `${path}[]`);
  if (s.additionalProperties && typeof s.additionalProperties === 'object')
    yield* walk(s.additionalProperties as OpenApiSchema, `${path}{}`);
}

test('the schema is structural: one type everywhere, no additionalProperties: false, no unions, no $schema', () => {
  for (const [path, s] of walk(openApiSchema())) {
    expect({ path, type: typeof s.type }).toEqual({ path, type: 'string' });
    for (const k of ['$schema', 'anyOf', 'oneOf', 'allOf', 'not', '$ref'])
      expect({ path, has: k in s }).toEqual({ path, has: false });
    if ('additionalProperties' in s)
      expect({ path, ap: typeof s.additionalProperties }).toEqual({ path, ap: 'object' });
  }
});

test('bounds, formats, descriptions and the cross-field CEL rules are carried over', () => {
  const all = new Map(walk(openApiSchema()));
  expect(all.get('spec.vips')).toMatchObject({ minItems: 1, maxItems: 16 });
  expect(all.get('spec.vips[].address')).toMatchObject({ format: 'cidr', maxLength: 64 });
  expect(all.get('spec.checks[].rise')).toMatchObject({ minimum: 1, format: 'int32', default: 2 });
  expect(all.get('spec.checks[].type')?.enum).toEqual(['http', 'tcp', 'process', 'mysql', 'script']);
  expect(all.get('status.epoch')).toMatchObject({ type: 'integer', format: 'int64' });
  expect(all.get('spec.checks[].http.path')?.format).toBeUndefined(); // zod's "starts_with" is not a Kubernetes format
  const rules = (p: string) =>
    ((all.get(p)?.['x-kubernetes-validations'] as { rule: string }[] | undefined) ?? []).map((r) => r.rule);
  expect(rules('spec.nodes').join()).toMatch(/exists_one/);
  expect(rules('spec.vips').join()).toMatch(/cidr\(/);
  expect(rules('spec.vips[].address').join()).toMatch(/isCIDR\(self\)/);
  expect(rules('spec.checks[]').length).toBe(6);
  // Every field people write has a description, for `kubectl explain`.
  for (const [path, s] of all) {
    if (
      path.startsWith('spec') &&
      !/\.(port|host|path|scheme|protocol|provider|socket|maxLagSeconds)$/.test(path) &&
      !path.endsWith('[]')
    ) {
      if (s.type === 'object' || s.type === 'array')
        expect({ path, description: typeof s.description }).toEqual({ path, description: 'string' });
    }
  }
});

test('the CRD: cluster-scoped, short name fg, status subresource, printer columns', () => {
  const c = crd() as {
    spec: {
      scope: string;
      names: { shortNames: string[] };
      versions: { subresources: unknown; additionalPrinterColumns: { name: string }[] }[];
    };
  };
  expect(c.spec.scope).toBe('Cluster');
  expect(c.spec.names.shortNames).toEqual(['fg']);
  expect(c.spec.versions[0]?.subresources).toEqual({ status: {} });
  expect(c.spec.versions[0]?.additionalPrinterColumns.map((p) => p.name)).toEqual(
    expect.arrayContaining(['VIPs', 'Holder', 'Phase', 'Age']),
  );
});

test('toStructural refuses what has no structural form instead of emitting it', () => {
  const union = z.toJSONSchema(z.object({ a: z.union([z.string(), z.object({ b: z.string() })]) })) as OpenApiSchema;
  expect(() => toStructural(union)).toThrow(/a: anyOf has no structural form/);
  const types = z.toJSONSchema(z.object({ a: z.union([z.string(), z.number()]) })) as OpenApiSchema;
  expect(() => toStructural(types)).toThrow(/a: type \["string","number"\] has no structural form/);
  const open = z.toJSONSchema(z.object({ a: z.object({}).loose() })) as OpenApiSchema;
  expect(() => toStructural(open)).toThrow(/a\{\}: a field without a type/);
  const empty = z.toJSONSchema(z.object({ a: z.object({}) })) as OpenApiSchema;
  expect(() => toStructural(empty)).toThrow(/a: an object without properties/);
  const strict = toStructural(z.toJSONSchema(z.object({ a: z.string().startsWith('/') }).strict()) as OpenApiSchema);
  expect(strict).toEqual({ type: 'object', properties: { a: { type: 'string', pattern: '^\\/.*' } }, required: ['a'] });
});
