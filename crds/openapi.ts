// What the zod schema in failovergroup.ts cannot say by itself, for the CRD's OpenAPI schema: the cross-field
// rules of its superRefine()s as CEL (x-kubernetes-validations), formats, descriptions of objects that have none,
// and list semantics. Keyed by the field's path in the CRD ("spec.vips[].address"); the generator fails when a
// path names no field, so this table cannot drift away from the schema silently.
//
// Keep each rule next to the zod check it mirrors (named in the comment). The zod schema stays the source of truth:
// the controller parses every object with it and reports what it rejects as an Invalid condition; these rules make
// the API server reject the same mistakes at `kubectl apply`, with a message that names the field.
import { CheckTypes } from './checks.js';
import { LVS_OPENAPI_EXTRAS } from './virtualserver.js';

export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  /** Where the error is reported, relative to the field that carries the rule (".nodes"). */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

export interface FieldExtras {
  description?: string;
  format?: string;
  /** A regular expression (RE2) for what a zod refine() checks with a function. */
  pattern?: string;
  rules?: CelRule[];
  listType?: 'atomic' | 'set' | 'map';
  listMapKeys?: string[];
}

const CIDR_RULES: CelRule[] = [
  // parseCidr(): an address, a slash, a prefix length within the family's bounds. (CEL's isCIDR also refuses
  // IPv4-mapped IPv6 addresses such as ::ffff:198.18.0.1/24, which zod lets through: the API is the stricter.)
  {
    rule: 'isCIDR(self)',
    messageExpression:
      "'must be an IPv4 or IPv6 address with a prefix length within its family (1..32 or 1..128), like 198.18.0.100/24 or 2001:2::100/64; got ' + self",
  },
  { rule: '!isCIDR(self) || cidr(self).prefixLength() >= 1', message: 'the prefix length must be at least 1' },
];

export const OPENAPI_EXTRAS: Record<string, FieldExtras> = {
  spec: {
    description: 'What the group should be: its addresses, the nodes that may hold them, and how health is judged.',
    rules: [
      // FailoverGroupSpec.superRefine: an SNAT destination needs a VIP of its family.
      {
        rule: 'self.snat.all(r, !isCIDR(r.destination) || self.vips.exists(v, isCIDR(v.address) && cidr(v.address).ip().family() == cidr(r.destination).ip().family()))',
        message: 'each SNAT destination needs a VIP of its address family to use as the source',
        fieldPath: '.snat',
      },
    ],
  },
  'spec.hooks': {
    // FailoverGroupSpec.superRefine: duplicate hook.
    rules: [{ rule: 'self.all(h, self.exists_one(g, g == h))', message: 'hook names must be unique' }],
  },
  'spec.vips[].address': { format: 'cidr', rules: CIDR_RULES },
  'spec.vips': {
    rules: [
      // FailoverGroupSpec.superRefine: duplicate VIP (same address, whatever the prefix length).
      {
        rule: 'self.all(v, !isCIDR(v.address) || self.exists_one(w, isCIDR(w.address) && cidr(w.address).ip() == cidr(v.address).ip()))',
        message: 'VIP addresses must be unique within the group (whatever their prefix lengths)',
      },
    ],
  },
  'spec.nodes': {
    rules: [
      // FailoverGroupSpec.superRefine: duplicate node name.
      {
        rule: 'self.all(n, self.exists_one(m, m.name == n.name))',
        message: 'node names must be unique',
      },
    ],
  },
  'spec.nodes[]': { description: 'A node that may hold the addresses.' },
  // isResourceName(): a DNS-1123 subdomain.
  'spec.nodes[].name': { pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' },
  // isInterfaceName().
  'spec.vips[].interface': { pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$' },
  'spec.checks': {
    rules: [
      // FailoverGroupSpec.superRefine: duplicate check name.
      {
        rule: 'self.all(c, self.exists_one(d, d.name == c.name))',
        message: 'check names must be unique',
      },
    ],
  },
  'spec.checks[]': {
    description:
      'One health check: its type, the settings of that type (the field named like the type), timing and hysteresis.',
    rules: [
      // HealthCheck.superRefine: the field named like the type is set, no other.
      ...CheckTypes.map((t): CelRule => ({
        rule: `(self.type == '${t}') == has(self.${t})`,
        messageExpression: `self.type == '${t}' ? 'type is ${t}, so ${t} must be set' : 'type is ' + self.type + ', so ${t} must not be set'`,
        fieldPath: `.${t}`,
      })),
      // HealthCheck.superRefine: timeoutMs <= intervalMs (both are defaulted before validation).
      {
        rule: 'self.timeoutMs <= self.intervalMs',
        message: 'timeoutMs must not exceed intervalMs',
        fieldPath: '.timeoutMs',
      },
    ],
  },
  'spec.checks[].http': { description: 'An HTTP(S) GET that must answer with an accepted status (type http).' },
  'spec.checks[].tcp': { description: 'A TCP connection that must be accepted (type tcp).' },
  'spec.checks[].process': {
    description: 'A process that must be running (type process).',
    // HealthCheck.superRefine: process needs name or pidFile.
    rules: [{ rule: 'has(self.name) || has(self.pidFile)', message: 'process needs name or pidFile' }],
  },
  'spec.checks[].mysql': {
    description: 'A MySQL server that must answer SELECT 1 (type mysql), optionally read-only and replicating.',
  },
  'spec.checks[].script': { description: "A command from the agent's local configuration, by name (type script)." },
  'spec.snat[]': {
    description: 'Outgoing traffic to a destination network that leaves with the VIP as its source address.',
    // SnatRule.superRefine: ports need protocol tcp or udp.
    rules: [
      {
        rule: "!has(self.ports) || size(self.ports) == 0 || self.protocol != 'all'",
        message: 'ports need protocol tcp or udp',
        fieldPath: '.ports',
      },
    ],
  },
  'spec.snat[].destination': { format: 'cidr', rules: CIDR_RULES },
  'spec.cloud': {
    description: 'A cloud floating (reserved) IP that follows the holder.',
    // CloudSpec.superRefine: a DigitalOcean floating IP is IPv4.
    rules: [
      {
        rule: "self.provider != 'digitalocean' || (isIP(self.floatingIp) && ip(self.floatingIp).family() == 4)",
        message: 'a DigitalOcean floating IP is an IPv4 address, like 203.0.113.10',
        fieldPath: '.floatingIp',
      },
    ],
  },
  'spec.announce': { description: 'Gratuitous ARP / unsolicited neighbour advertisement after a move.' },
  'status.phase': {
    description: 'Active, Degraded (a candidate is not eligible), NoHealthyNode, Invalid (rejected), or Pending.',
  },
  'status.holder': { description: 'The node that holds the addresses now.' },
  'status.vips': { description: 'The addresses, as placed.' },
  'status.nodes': { description: 'Each candidate: lease alive, health, effective priority, per-check results.' },
  'status.lastTransition': { description: 'The last move of the addresses.' },
  'status.lastTransition.time': { format: 'date-time' },
  'status.conditions': {
    description:
      'Ready (the addresses are held by a healthy node) and Accepted (the spec is valid and its VIPs are not claimed by another group).',
    listType: 'map',
    listMapKeys: ['type'],
  },
  'status.conditions[].lastTransitionTime': { format: 'date-time' },
};

// LVS virtual services (crds/virtualserver.ts): merged in, their rules after the ones above.
for (const [path, x] of Object.entries(LVS_OPENAPI_EXTRAS)) {
  const o = OPENAPI_EXTRAS[path];
  OPENAPI_EXTRAS[path] = o ? { ...o, ...x, rules: [...(o.rules ?? []), ...(x.rules ?? [])] } : x;
}
