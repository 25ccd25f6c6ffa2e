// Source of the probe client that runs inside the client namespace (`ip netns exec <client> node <file> <json>`).
// Kept as plain JavaScript text so it runs under bare `node` from jest (TS sources) and from dist alike;
// probe.ts writes it into the testbed dir. Output: one JSON object per line on stdout.
export const PROBE_RUNNER_SOURCE = String.raw`
import net from 'node:net';
const cfg = JSON.parse(process.argv[2]);
const { target, port, intervalMs, timeoutMs, maxDurationMs, maxCount, maxInflight } = cfg;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const t0 = now();
let seq = 0, inflight = 0, stopping = false, ended = false, skipped = 0;

function finishAll() {
  if (ended) return;
  ended = true;
  out({ end: true, t: now(), count: seq, skipped });
  process.exitCode = 0;
  setTimeout(() => process.exit(0), 50).unref();
}
function maybeEnd() { if (stopping && inflight === 0) finishAll(); }

function attempt(n) {
  const t = now();
  inflight++;
  let done = false, buf = '';
  const sock = net.connect({ host: target, port, noDelay: true });
  const timer = setTimeout(() => finish(false, undefined, 'timeout'), timeoutMs);
  function finish(ok, body, error) {
    if (done) return;
    done = true;
    clearTimeout(timer);
    sock.destroy();
    inflight--;
    const s = { seq: n, t, tEnd: now(), ok };
    if (body !== undefined) s.body = body;
    if (error !== undefined) s.error = error;
    out(s);
    maybeEnd();
  }
  sock.setEncoding('utf8');
  sock.on('connect', () => sock.write('GET / HTTP/1.0\r\nHost: ' + target + '\r\nConnection: close\r\n\r\n'));
  sock.on('data', (d) => { buf += d; if (buf.length > 65536) finish(false, undefined, 'response too large'); });
  sock.on('end', () => {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
    const i = buf.indexOf('\r\n\r\n');
    const body = i >= 0 ? buf.slice(i + 4).trim() : undefined;
    if (m && m[1] === '200') finish(true, body);
    else finish(false, body, m ? 'status ' + m[1] : 'bad response');
  });
  sock.on('error', (e) => finish(false, undefined, e.code || e.message));
}

function tick() {
  if (stopping) return;
  const elapsed = now() - t0;
  if (seq >= maxCount || elapsed >= maxDurationMs) { stopping = true; maybeEnd(); return; }
  if (inflight >= maxInflight) skipped++;
  else attempt(seq++);
  // next slot on the fixed grid; if late, do not burst, take the next slot from now
  const next = Math.max(now(), t0 + Math.ceil((now() - t0 + 0.001) / intervalMs) * intervalMs);
  setTimeout(tick, Math.max(0, next - now()));
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { stopping = true; maybeEnd(); setTimeout(finishAll, timeoutMs + 50).unref(); });
setTimeout(finishAll, maxDurationMs + timeoutMs + 1000).unref();
out({ ready: true, t: t0, pid: process.pid });
tick();
`;
