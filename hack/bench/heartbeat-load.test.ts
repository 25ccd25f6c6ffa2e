import {
  clientGroups,
  expectedPutsPerSecond,
  heartbeatGrowthLines,
  heartbeatLoadTable,
  latencySummary,
  meanMs,
  mib,
  parseSchedstat,
  perMinute,
  promFirst,
  promValue,
  waitPercent,
  type HeartbeatLoadResult,
  type HeartbeatPhaseResult,
} from './heartbeat-load.js';

const METRICS = [
  '# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.',
  '# TYPE etcd_disk_wal_fsync_duration_seconds histogram',
  'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 40',
  'etcd_disk_wal_fsync_duration_seconds_sum 0.0125',
  'etcd_disk_wal_fsync_duration_seconds_count 42',
  'etcd_disk_wal_fsync_duration_seconds_count_total 7',
  'etcd_mvcc_db_total_size_in_bytes 2.4576e+04',
  'etcd_mvcc_db_total_size_in_use_in_bytes 16384',
  'grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 5',
  'grpc_server_handled_total{grpc_code="DeadlineExceeded",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 2',
].join('\n');

describe('promValue / promFirst', () => {
  it('reads a metric by its exact name, summing over labels', () => {
    expect(promValue(METRICS, 'etcd_disk_wal_fsync_duration_seconds_count')).toBe(42);
    expect(promValue(METRICS, 'etcd_disk_wal_fsync_duration_seconds_sum')).toBe(0.0125);
    expect(promValue(METRICS, 'etcd_mvcc_db_total_size_in_bytes')).toBe(24576);
    expect(promValue(METRICS, 'grpc_server_handled_total')).toBe(7);
  });
  it('is undefined for an absent metric and ignores HELP/TYPE lines', () => {
    expect(promValue(METRICS, 'etcd_disk_backend_commit_duration_seconds_count')).toBeUndefined();
    expect(promValue(METRICS, 'etcd_disk_wal_fsync_duration_seconds')).toBeUndefined();
  });
  it('promFirst takes the first name present', () => {
    expect(promFirst(METRICS, ['etcd_debugging_mvcc_db_total_size_in_bytes', 'etcd_mvcc_db_total_size_in_bytes'])).toBe(
      24576,
    );
    expect(promFirst(METRICS, ['nope'])).toBeUndefined();
  });
});

describe('latencySummary', () => {
  it('is undefined for no values', () => {
    expect(latencySummary([])).toBeUndefined();
  });
  it('gives interpolated p50/p99 and the max, rounded to 0.01 ms', () => {
    const v = Array.from({ length: 101 }, (_, i) => i); // 0..100
    expect(latencySummary(v)).toEqual({ n: 101, p50: 50, p99: 99, max: 100 });
    expect(latencySummary([1.234567])).toEqual({ n: 1, p50: 1.23, p99: 1.23, max: 1.23 });
    expect(latencySummary([3, 1, 2, 4])).toEqual({ n: 4, p50: 2.5, p99: 3.97, max: 4 });
  });
  it('handles more values than the spread operator could take', () => {
    const v = Array.from({ length: 200_000 }, (_, i) => i % 1000);
    expect(latencySummary(v)?.max).toBe(999);
  });
});

describe('small helpers', () => {
  it('expectedPutsPerSecond is N x 1000 / heartbeatMs', () => {
    expect(expectedPutsPerSecond(100, 30)).toBeCloseTo(3333.33, 1);
    expect(expectedPutsPerSecond(3, 50)).toBe(60);
  });
  it('perMinute scales a delta over a window', () => {
    expect(perMinute(100, 10_000)).toBe(600);
    expect(perMinute(undefined, 10_000)).toBeUndefined();
    expect(perMinute(5, 0)).toBeUndefined();
  });
  it('clientGroups splits nodes into consecutive groups', () => {
    expect(clientGroups(3, 10)).toEqual([[0, 1, 2]]);
    expect(clientGroups(25, 10).map((g) => g.length)).toEqual([10, 10, 5]);
    expect(clientGroups(100, 10)).toHaveLength(10);
    expect(clientGroups(2, 0)).toEqual([[0], [1]]);
  });
  it('mib formats bytes', () => {
    expect(mib(2 ** 20 * 1.5)).toBe('1.5');
    expect(mib(16384, 2)).toBe('0.02');
    expect(mib(undefined)).toBe('–');
  });
  it('parseSchedstat and waitPercent', () => {
    expect(parseSchedstat('1000 3000 7\n')).toEqual({ runNs: 1000, waitNs: 3000 });
    expect(parseSchedstat('')).toEqual({ runNs: 0, waitNs: 0 });
    // 250 ms waited in a 1 s window: 25 %.
    expect(waitPercent({ runNs: 0, waitNs: 0 }, { runNs: 3e9, waitNs: 250e6 }, 1000)).toBe(25);
    // Summed over threads it may exceed 100 %.
    expect(waitPercent({ runNs: 0, waitNs: 1e9 }, { runNs: 0, waitNs: 4e9 }, 2000)).toBe(150);
    expect(waitPercent(undefined, { runNs: 1, waitNs: 1 }, 1000)).toBeUndefined();
    expect(waitPercent({ runNs: 0, waitNs: 0 }, { runNs: 1, waitNs: 1 }, 0)).toBeUndefined();
  });
  it('meanMs of a histogram delta', () => {
    expect(meanMs(0.5, 1000)).toBe(0.5);
    expect(meanMs(0.5, 0)).toBeUndefined();
    expect(meanMs(undefined, 3)).toBeUndefined();
  });
});

const phase = (p: Partial<HeartbeatPhaseResult>): HeartbeatPhaseResult => ({
  phase: 'baseline',
  windowMs: 10_000,
  etcdCpuPercent: 2.5,
  etcdRssMiB: 35,
  putsPerSecond: 0,
  etcdPutsPerSecond: 0,
  putErrors: 0,
  beatsSkipped: 0,
  watchEventsPerSecond: 0,
  keepalivesPerSecond: 40,
  fsyncsPerSecond: 0,
  backendCommitsPerSecond: 0,
  leasesLost: 0,
  generatorCpuPercent: 3,
  generatorLoopDelayP99Ms: 7,
  loadAverage: [1, 1, 1],
  ...p,
});

describe('heartbeatLoadTable', () => {
  const results: HeartbeatLoadResult[] = [
    {
      nodes: 10,
      clients: 1,
      heartbeatMs: 30,
      lease: { ttlSeconds: 2, keepaliveIntervalMs: 250 },
      autoCompaction: 'off',
      phases: [
        phase({ dbInUseBytes: 16384 }),
        phase({
          phase: 'heartbeats',
          etcdCpuPercent: 18.1,
          fsyncsPerSecond: 299.9,
          backendCommitsPerSecond: 9.9,
          putsPerSecond: 320,
          putLatencyMs: { n: 3200, p50: 2.2, p99: 21.11, max: 68.58 },
          watchEventsPerSecond: 320,
          etcdRssMiB: 41,
          dbInUseBytes: 377_487,
        }),
      ],
      revisionsPerMinute: 19271,
      dbGrowthBytesPerMinute: 1.6 * 2 ** 20,
    },
    {
      nodes: 100,
      clients: 10,
      heartbeatMs: 30,
      lease: { ttlSeconds: 2, keepaliveIntervalMs: 250 },
      autoCompaction: 'off',
      phases: [],
      error: 'lease grants 0..49 not done | within 30000 ms',
    },
  ];
  it('has a header, one row per phase and a row for a failed node count', () => {
    const lines = heartbeatLoadTable(results).split('\n');
    expect(lines).toHaveLength(2 + 2 + 1);
    expect(lines[0]).toMatch(/^\| N \| phase \| etcd CPU % \| fsyncs\/s \|/);
    expect(lines[2]).toBe('| 10 | baseline | 2.5 | 0 | 0 | 0 | – | 0 | 40 | 35 | 0.02 | 0 |');
    expect(lines[3]).toBe(
      '| 10 | heartbeats | 18.1 | 299.9 | 9.9 | 320 (333) | 2.20 / 21.11 / 68.6 | 320 | 40 | 41 | 0.36 | 0 |',
    );
    // A pipe in the error would break the table.
    expect(lines[4]).toContain('| 100 | failed: lease grants 0..49 not done / within 30000 ms |');
    for (const l of lines) expect(l.startsWith('|') && l.endsWith('|')).toBe(true);
  });
  it('growth lines only for node counts that measured it', () => {
    expect(heartbeatGrowthLines(results)).toEqual([
      'N=10: 19271 revisions/min, db in use +1.6 MiB/min (auto-compaction off)',
    ]);
  });
});
