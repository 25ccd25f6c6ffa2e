// A rogue MySQL server on loopback (or a unix socket) that asks the check for the password in every way the
// protocol allows: the check must refuse each one, and the password must never appear in what the server reads.
import { generateKeyPairSync, privateDecrypt, constants } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthCheck } from '../../crds/failovergroup.js';
import type { AgentConfig } from '../config.js';
import { mysqlCheck } from './mysql.js';
import mysql from 'mysql2/promise';

const PASSWORD = 'Sup3r-S3cret-pw';
const SCRAMBLE = Buffer.from('abcdefghijklmnopqrst'); // 20 bytes
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = publicKey.export({ type: 'spki', format: 'pem' }) as string;

type Mode = 'clear-initial' | 'clear-switch' | 'sha256-switch' | 'caching-full' | 'dialog-switch' | 'native-ok';

function packet(seq: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(body.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, body]);
}

function handshake(plugin: string): Buffer {
  // CLIENT_LONG_PASSWORD|FOUND_ROWS|LONG_FLAG|CONNECT_WITH_DB|PROTOCOL_41|TRANSACTIONS|SECURE_CONNECTION
  const lower = 0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0200 | 0x2000 | 0x8000;
  const upper = 0x0008 | 0x0020; // PLUGIN_AUTH, PLUGIN_AUTH_LENENC_CLIENT_DATA
  const caps = Buffer.alloc(2);
  return Buffer.concat([
    Buffer.from([10]),
    Buffer.from('8.0.99-rogue\0'),
    Buffer.from([1, 0, 0, 0]),
    SCRAMBLE.subarray(0, 8),
    Buffer.from([0]),
    (caps.writeUInt16LE(lower), Buffer.from(caps)),
    Buffer.from([33, 2, 0]),
    (caps.writeUInt16LE(upper), Buffer.from(caps)),
    Buffer.from([21]),
    Buffer.alloc(10),
    SCRAMBLE.subarray(8),
    Buffer.from([0]),
    Buffer.from(`${plugin}\0`),
  ]);
}

const authSwitch = (plugin: string, data: Buffer) =>
  Buffer.concat([Buffer.from([0xfe]), Buffer.from(`${plugin}\0`), data]);
const OK = Buffer.from([0x00, 0, 0, 2, 0, 0, 0]);
const ERR = Buffer.concat([Buffer.from([0xff, 0x15, 0x04]), Buffer.from('#28000Access denied')]);

/** Serves one conversation per connection and keeps every byte the client sent. */
class RogueServer {
  received = Buffer.alloc(0);
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(private readonly mode: Mode) {}

  async listen(where: number | string): Promise<void> {
    this.server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve) => this.server!.listen(where, resolve));
  }
  port(): number {
    return (this.server!.address() as { port: number }).port;
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server!.close(() => r()));
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    let buf = Buffer.alloc(0);
    let step = 0;
    const initial = this.mode === 'clear-initial' ? 'mysql_clear_password' : 'mysql_native_password';
    s.write(packet(0, handshake(initial)));
    s.on('error', () => undefined);
    s.on('data', (d) => {
      this.received = Buffer.concat([this.received, d]);
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4) {
        const len = buf.readUIntLE(0, 3);
        if (buf.length < 4 + len) return;
        const seq = buf[3]!;
        buf = buf.subarray(4 + len);
        this.reply(s, seq + 1, step++);
      }
    });
  }

  private reply(s: Socket, seq: number, step: number): void {
    const send = (b: Buffer) => s.write(packet(seq, b));
    const scramble = Buffer.concat([SCRAMBLE, Buffer.from([0])]);
    if (this.mode === 'native-ok') return void send(step === 0 ? OK : ERR);
    if (step === 0) {
      if (this.mode === 'clear-initial' || this.mode === 'clear-switch')
        return void send(authSwitch('mysql_clear_password', Buffer.alloc(0)));
      if (this.mode === 'sha256-switch') return void send(authSwitch('sha256_password', scramble));
      if (this.mode === 'dialog-switch') return void send(authSwitch('dialog', Buffer.from('\x04Password: ')));
      return void send(authSwitch('caching_sha2_password', scramble));
    }
    if (this.mode === 'caching-full' && step === 1) return void send(Buffer.from([0x01, 0x04])); // full auth
    if (this.mode === 'caching-full' && step === 2)
      return void send(Buffer.concat([Buffer.from([0x01]), Buffer.from(PEM)]));
    send(ERR);
  }
}

/** A RogueServer listening at `where` (0: a free TCP port, else a unix socket path) for the length of `body`. */
async function withRogue(mode: Mode, where: number | string, body: (srv: RogueServer) => Promise<void>): Promise<void> {
  const srv = new RogueServer(mode);
  await srv.listen(where);
  try {
    await body(srv);
  } finally {
    await srv.close();
  }
}

/** Everything the rogue server could learn: the raw bytes, and any RSA block it can decrypt with its own key. */
function leaked(bytes: Buffer): boolean {
  if (bytes.includes(Buffer.from(PASSWORD))) return true;
  for (let i = 0; i + 256 <= bytes.length; i++) {
    try {
      const plain = privateDecrypt(
        { key: privateKey, oaepHash: 'sha1', padding: constants.RSA_PKCS1_OAEP_PADDING },
        bytes.subarray(i, i + 256),
      );
      const x = Buffer.from(plain.map((b, j) => b ^ SCRAMBLE[j % SCRAMBLE.length]!));
      if (x.includes(Buffer.from(PASSWORD))) return true;
    } catch {
      // not an RSA block
    }
  }
  return false;
}

describe('mysql check against a rogue server', () => {
  let dir: string;
  let config: AgentConfig;
  const exec = async () => ({ stdout: '', stderr: '', exitCode: 0 });
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vw-rogue-'));
    writeFileSync(join(dir, 'db.cnf'), `[client]\nuser=vw\npassword=${PASSWORD}\n`, { mode: 0o600 });
    config = { credentials: { db: join(dir, 'db.cnf') } } as unknown as AgentConfig;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = async (m: Record<string, unknown>) =>
    mysqlCheck(
      HealthCheck.parse({
        name: 'db',
        type: 'mysql',
        intervalMs: 5000,
        timeoutMs: 3000,
        mysql: { credentials: 'db', ...m },
      }),
      { exec, config },
      new AbortController().signal,
    );

  it('the fake server speaks enough MySQL: a native-password login succeeds up to the query', async () => {
    await withRogue('native-ok', 0, async (srv) => {
      const r = await run({ host: '127.0.0.1', port: srv.port() });
      expect(r.ok).toBe(false); // the query gets an error packet
      expect(srv.received.length).toBeGreaterThan(0);
      expect(leaked(srv.received)).toBe(false);
    });
  });

  it.each([
    ['clear-initial', /mysql_clear_password.*refused|MYSQL_CLEAR_PASSWORD/],
    ['clear-switch', /mysql_clear_password.*refused/],
    ['sha256-switch', /sha256_password.*refused/],
    ['dialog-switch', /dialog.*refused/],
    ['caching-full', /full authentication.*refused/],
  ] as const)('%s over TCP: refused, and the password never reaches the server', async (mode, why) => {
    await withRogue(mode, 0, async (srv) => {
      const r = await run({ host: '127.0.0.1', port: srv.port() });
      expect(r.ok).toBe(false);
      expect(r.message).toMatch(why);
      expect(r.message).not.toContain(PASSWORD);
      expect(srv.received.length).toBeGreaterThan(0);
      expect(leaked(srv.received)).toBe(false);
    });
  });

  it('full authentication over a unix socket named by the group is refused', async () => {
    const sock = join(dir, 'group.sock');
    await withRogue('caching-full', sock, async (srv) => {
      const r = await run({ socket: sock });
      expect(r.message).toMatch(/full authentication.*refused/);
      expect(leaked(srv.received)).toBe(false);
    });
  });

  it("full authentication over the credentials file's own socket goes ahead (the agent's configuration trusts it)", async () => {
    const sock = join(dir, 'own.sock');
    await withRogue('caching-full', sock, async (srv) => {
      const own = join(dir, 'own.cnf');
      writeFileSync(own, `[client]\nuser=vw\npassword=${PASSWORD}\nsocket=${sock}\n`, { mode: 0o600 });
      const r = await mysqlCheck(
        HealthCheck.parse({
          name: 'db',
          type: 'mysql',
          intervalMs: 5000,
          timeoutMs: 3000,
          mysql: { credentials: 'own' },
        }),
        { exec, config: { credentials: { own } } as unknown as AgentConfig },
        new AbortController().signal,
      );
      expect(r.ok).toBe(false); // the rogue server refuses the login in the end
      expect(r.message).not.toMatch(/refused$/);
      expect(srv.received.includes(Buffer.from(PASSWORD))).toBe(true); // over the local socket, as MySQL does
    });
  });

  it("the check's leak detector does see a password (control: mysql2 defaults would have sent it)", async () => {
    await withRogue('caching-full', 0, async (srv) => {
      await mysql
        .createConnection({ host: '127.0.0.1', port: srv.port(), user: 'vw', password: PASSWORD, connectTimeout: 3000 })
        .then((c) => c.destroy())
        .catch(() => undefined);
      expect(leaked(srv.received)).toBe(true);
    });
  }, 15_000);
});
