// The health checks of a FailoverGroup (spec.checks): one schema per check type and the check itself.
import { z } from 'zod';
import { httpAnswerFields, LocalName, ms, Port } from './fields.js';

const HttpCheck = z
  .object({
    port: Port.default(80),
    path: z.string().startsWith('/').max(1024).default('/'),
    host: z
      .string()
      .max(253)
      .default('127.0.0.1')
      .describe('Address the agent connects to; the node itself by default.'),
    ...httpAnswerFields,
  })
  .strict();

const TcpCheck = z.object({ port: Port, host: z.string().max(253).default('127.0.0.1') }).strict();

const ProcessCheck = z
  .object({
    name: z.string().min(1).max(15).optional().describe('Process name (comm), as pgrep -x matches it.'),
    pidFile: z
      .string()
      .startsWith('/')
      .max(4096)
      .optional()
      .describe('A pid file; the process it names must be alive.'),
  })
  .strict();

const MysqlCheck = z
  .object({
    host: z.string().max(253).default('127.0.0.1'),
    port: Port.default(3306),
    socket: z.string().startsWith('/').max(4096).optional(),
    credentials: LocalName.optional().describe(
      "Name of a credentials file in the agent's local configuration; never a password here.",
    ),
    expectReadOnly: z.boolean().optional().describe('When set, @@global.read_only must equal it.'),
    replication: z
      .object({
        maxLagSeconds: z.number().int().min(0).max(86400).optional(),
      })
      .strict()
      .optional()
      .describe('When present, the IO and SQL replication threads must run (and lag stay under the bound).'),
  })
  .strict();

const ScriptCheck = z
  .object({
    name: LocalName.describe("A command named in the agent's local configuration; commands never come from here."),
  })
  .strict();

export const CheckTypes = ['http', 'tcp', 'process', 'mysql', 'script'] as const;

export const HealthCheck = z
  .object({
    name: LocalName.describe('Unique within the group.'),
    type: z.enum(CheckTypes),
    intervalMs: ms('Time between two runs', 10, 3_600_000, 1000),
    timeoutMs: ms('How long one run may take', 10, 600_000, 1000),
    rise: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(2)
      .describe('Successes in a row before a failing check counts as passing.'),
    fall: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(2)
      .describe('Failures in a row before a passing check counts as failing.'),
    weight: z
      .number()
      .int()
      .min(-1000)
      .max(1000)
      .default(0)
      .describe(
        'keepalived-style weight. 0: the check is required (a failing check makes the node unhealthy). ' +
          'Positive: added to the priority while passing. Negative: added while failing.',
      ),
    http: HttpCheck.optional(),
    tcp: TcpCheck.optional(),
    process: ProcessCheck.optional(),
    mysql: MysqlCheck.optional(),
    script: ScriptCheck.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const t of CheckTypes) {
      const present = c[t] !== undefined;
      if (t === c.type && !present)
        ctx.addIssue({ code: 'custom', path: [t], message: `type is ${t}, so ${t} must be set` });
      if (t !== c.type && present)
        ctx.addIssue({ code: 'custom', path: [t], message: `type is ${c.type}, so ${t} must not be set` });
    }
    if (c.timeoutMs > c.intervalMs)
      ctx.addIssue({ code: 'custom', path: ['timeoutMs'], message: 'must not exceed intervalMs' });
    if (c.type === 'process' && c.process && !c.process.name && !c.process.pidFile)
      ctx.addIssue({ code: 'custom', path: ['process'], message: 'needs name or pidFile' });
  });
