// Generates the FailoverGroup CustomResourceDefinition from the zod schema (failovergroup.ts) and the table of what
// zod cannot say (openapi.ts).
//
//   npm run build && npm run crds           writes crds/failovergroup.crd.yaml and deploy/kubernetes/00-crd.yaml
//   node dist/crds/generate.js --check      exits 1 when a checked-in copy differs from what the schema gives
//
// zod's JSON Schema is turned into a structural OpenAPI v3 schema as apiextensions.k8s.io/v1 wants it: no $schema,
// no additionalProperties: false (unknown fields are pruned, and rejected by kubectl's default strict field
// validation), only the formats Kubernetes knows, no unbounded safe-integer limits, and no anyOf/oneOf at all
// (the generator refuses them rather than emit something that is not structural).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { z } from 'zod';
import { API_GROUP, API_VERSION, FailoverGroupSpec, FailoverGroupStatus, KIND, PLURAL } from './failovergroup.js';
import { OPENAPI_EXTRAS, type FieldExtras } from './openapi.js';

export const CRD_NAME = `${PLURAL}.${API_GROUP}`;

/** The files the generator writes, relative to the repository root. */
export const CRD_OUTPUTS = ['crds/failovergroup.crd.yaml', 'deploy/kubernetes/00-crd.yaml'] as const;

export type OpenApiSchema = { [key: string]: unknown };

/** Formats that Kubernetes validates in a CRD (k8s.io/apiextensions-apiserver, supported formats). */
const KUBE_FORMATS = new Set([
  'bsonobjectid',
  'uri',
  'email',
  'hostname',
  'ipv4',
  'ipv6',
  'cidr',
  'mac',
  'uuid',
  'uuid3',
  'uuid4',
  'uuid5',
  'isbn',
  'isbn10',
  'isbn13',
  'creditcard',
  'ssn',
  'hexcolor',
  'rgbcolor',
  'byte',
  'password',
  'date',
  'duration',
  'datetime',
  'date-time',
  'int32',
  'int64',
  'float',
  'double',
]);

/** JSON Schema keywords that a structural schema may carry (everything else is refused, so nothing is lost silently). */
const KEPT = new Set([
  'type',
  'description',
  'properties',
  'items',
  'required',
  'enum',
  'default',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'format',
  'additionalProperties',
  'nullable',
]);

const SAFE = Number.MAX_SAFE_INTEGER;

/** zod's JSON Schema (draft 2020-12) to a structural OpenAPI v3 schema. Throws on what has no structural form. */
export function toStructural(schema: OpenApiSchema, path = ''): OpenApiSchema {
  const out: OpenApiSchema = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$schema') continue;
    if (k === 'anyOf' || k === 'oneOf' || k === 'allOf' || k === 'not' || k === '$ref' || k === '$defs') {
      throw new Error(`${path || '(root)'}: ${k} has no structural form; give the field one type in the zod schema`);
    }
    if (!KEPT.has(k))
      throw new Error(`${path || '(root)'}: JSON Schema keyword "${k}" is not handled by the CRD generator`);
    if (k === 'type' && typeof v !== 'string') {
      throw new Error(
        `${path || '(root)'}: type ${JSON.stringify(v)} has no structural form; give the field one type in the zod schema`,
      );
    }
    if (k === 'format' && !KUBE_FORMATS.has(String(v))) continue; // e.g. zod's "starts_with": the pattern says it
    if (k === 'additionalProperties') {
      if (v === false || v === true) continue;
      out[k] = toStructural(v as OpenApiSchema, `${path}{}`);
      continue;
    }
    if ((k === 'minimum' && v === -SAFE) || (k === 'maximum' && v === SAFE)) continue;
    if (k === 'properties') {
      out[k] = Object.fromEntries(
        Object.entries(v as Record<string, OpenApiSchema>).map(([name, s]) => [
          name,
          toStructural(s, path ? `${path}.${name}` : name),
        ]),
      );
      continue;
    }
    if (k === 'items') {
      out[k] = toStructural(v as OpenApiSchema, `${path}[]`);
      continue;
    }
    out[k] = v;
  }
  if (typeof out.type !== 'string') throw new Error(`${path || '(root)'}: a field without a type is not structural`);
  if (out.type === 'integer' && out.format === undefined) {
    const small =
      typeof out.minimum === 'number' &&
      typeof out.maximum === 'number' &&
      out.minimum >= -(2 ** 31) &&
      out.maximum < 2 ** 31;
    out.format = small ? 'int32' : 'int64';
  }
  const noProperties = out.properties === undefined || Object.keys(out.properties as object).length === 0;
  if (out.type === 'object' && noProperties && out.additionalProperties === undefined) {
    throw new Error(`${path || '(root)'}: an object without properties would keep unknown fields or lose them all`);
  }
  return out;
}

/** Finds the sub-schema at "spec.vips[].address". */
function at(root: OpenApiSchema, path: string): OpenApiSchema | undefined {
  let cur: OpenApiSchema | undefined = root;
  for (const seg of path.split('.')) {
    const name = seg.replace(/\[\]$/, '');
    cur = (cur?.properties as Record<string, OpenApiSchema> | undefined)?.[name];
    if (seg.endsWith('[]')) cur = cur?.items as OpenApiSchema | undefined;
    if (!cur) return undefined;
  }
  return cur;
}

function applyExtras(root: OpenApiSchema, extras: Record<string, FieldExtras>): void {
  for (const [path, x] of Object.entries(extras)) {
    const s = at(root, path);
    if (!s) throw new Error(`crds/openapi.ts names ${path}, which the FailoverGroup schema does not have`);
    if (x.description !== undefined) s.description = x.description;
    if (x.format !== undefined) s.format = x.format;
    if (x.pattern !== undefined) s.pattern = x.pattern;
    if (x.listType !== undefined) s['x-kubernetes-list-type'] = x.listType;
    if (x.listMapKeys !== undefined) s['x-kubernetes-list-map-keys'] = x.listMapKeys;
    if (x.rules !== undefined) s['x-kubernetes-validations'] = x.rules;
  }
}

/** The openAPIV3Schema of the FailoverGroup CRD. */
export function openApiSchema(): OpenApiSchema {
  const spec = toStructural(z.toJSONSchema(FailoverGroupSpec, { io: 'input' }) as OpenApiSchema, 'spec');
  const status = toStructural(z.toJSONSchema(FailoverGroupStatus, { io: 'input' }) as OpenApiSchema, 'status');
  const root: OpenApiSchema = {
    description:
      'A FailoverGroup: virtual IP addresses that move together to the best healthy node of a list (vipwarden). ' +
      'An address is held by at most one node at a time, whatever fails.',
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: 'vipwarden.io/v1alpha1' },
      kind: { type: 'string', description: 'FailoverGroup' },
      metadata: { type: 'object' },
      spec,
      status,
    },
  };
  applyExtras(root, OPENAPI_EXTRAS);
  return root;
}

/** The CustomResourceDefinition object. */
export function crd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: CRD_NAME,
      labels: { 'app.kubernetes.io/name': 'vipwarden', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: API_GROUP,
      scope: 'Cluster',
      names: {
        plural: PLURAL,
        singular: KIND.toLowerCase(),
        kind: KIND,
        listKind: `${KIND}List`,
        shortNames: ['fg'],
        categories: ['vipwarden'],
      },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            // A string column prints only the first value a JSON path finds (a whole array prints as JSON): the first
            // address by default, the list with -o wide.
            {
              name: 'VIP',
              type: 'string',
              jsonPath: '.status.vips[0]',
              description: 'The first address, as placed by the controller (all of them: -o wide).',
            },
            {
              name: 'VIPs',
              type: 'string',
              jsonPath: '.status.vips',
              priority: 1,
              description: 'The addresses, as placed by the controller.',
            },
            {
              name: 'Holder',
              type: 'string',
              jsonPath: '.status.holder',
              description: 'The node that holds the addresses.',
            },
            {
              name: 'Phase',
              type: 'string',
              jsonPath: '.status.phase',
              description: 'Active, Degraded, NoHealthyNode, Invalid.',
            },
            {
              name: 'Epoch',
              type: 'integer',
              jsonPath: '.status.epoch',
              priority: 1,
              description: 'etcd revision of the assignment.',
            },
            { name: 'Failback', type: 'string', jsonPath: '.spec.failback', priority: 1 },
            { name: 'ArbiterLoss', type: 'string', jsonPath: '.spec.arbiterLoss', priority: 1 },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: openApiSchema() },
        },
      ],
    },
  };
}

export function crdYaml(): string {
  return (
    '# Generated by `npm run crds` (crds/generate.ts) from the zod schema in crds/failovergroup.ts and the rules in\n' +
    '# crds/openapi.ts. Do not edit: change those and run `npm run build && npm run crds`.\n' +
    toYaml(crd(), { lineWidth: 0, aliasDuplicateObjects: false })
  );
}

function repoRoot(): string {
  // crds/ (ts, under jest) or dist/crds/ (js).
  const here = dirname(fileURLToPath(import.meta.url));
  const up = resolve(here, '..');
  return up.endsWith('/dist') ? resolve(up, '..') : up;
}

/** The outputs that differ from what the schema gives now (empty when all are current). */
export function staleOutputs(root = repoRoot()): string[] {
  const want = crdYaml();
  return CRD_OUTPUTS.filter((p) => {
    try {
      return readFileSync(join(root, p), 'utf8') !== want;
    } catch {
      return true;
    }
  });
}

function main(argv: string[]): void {
  const root = repoRoot();
  if (argv.includes('--check')) {
    const stale = staleOutputs(root);
    if (stale.length > 0) {
      console.error(`out of date: ${stale.join(', ')}; run "npm run build && npm run crds"`);
      process.exit(1);
    }
    return;
  }
  const text = crdYaml();
  for (const p of CRD_OUTPUTS) writeFileSync(join(root, p), text);
  console.log(`wrote ${CRD_OUTPUTS.join(', ')}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
