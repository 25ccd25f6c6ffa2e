// The wire format of the peer channel: one UDP datagram per message,
//
//   "VWP1" | HMAC-SHA256(key, "VWP1" | payload) (32 bytes) | payload (JSON, UTF-8)
//
// The MAC covers the exact bytes sent, so nothing is canonicalised and nothing is parsed before it is verified.
// The payload names sender and recipient, a timestamp and a random nonce (replays), and for an answer the nonce of
// the request it answers: a message cannot be re-addressed, replayed later, or taken as the answer to another request.
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { secretFileProblem } from '../../common/secret-file.js';

export const MAGIC = Buffer.from('VWP1');
const MAC_BYTES = 32;
export const HEADER_BYTES = MAGIC.length + MAC_BYTES;
/** Fewest characters the shared secret may have (`openssl rand -base64 32` gives 44). */
export const MIN_SECRET_CHARS = 32;

/** The MAC key, derived from the secret so the file's bytes serve one purpose only. */
export class PeerKey {
  private constructor(private readonly key: Buffer) {}

  static fromSecret(secret: string): PeerKey {
    const s = secret.trim();
    if (s.length < MIN_SECRET_CHARS)
      throw new Error(`the peer secret has ${s.length} characters: at least ${MIN_SECRET_CHARS} are needed`);
    return new PeerKey(Buffer.from(hkdfSync('sha256', s, 'vipwarden-peer', 'v1 message mac', MAC_BYTES)));
  }

  /** Reads the key file: private to its owner (common/secret-file.ts) and long enough, or an error saying why. */
  static fromFile(path: string): PeerKey {
    const problem = secretFileProblem(path, 'peer key file');
    if (problem) throw new Error(problem);
    try {
      return PeerKey.fromSecret(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`peer key file ${path}: ${(e as Error).message}`);
    }
  }

  mac(payload: Buffer): Buffer {
    return createHmac('sha256', this.key).update(MAGIC).update(payload).digest();
  }
}

const Node = z.string().min(1).max(253);
const Nonce = z.string().regex(/^[A-Za-z0-9_-]{22}$/);
const Common = { from: Node, to: Node, ts: z.number().int().nonnegative(), nonce: Nonce, body: z.unknown() };
export const Envelope = z.discriminatedUnion('t', [
  z.object({ t: z.literal('req'), ...Common }).strict(),
  z.object({ t: z.literal('ans'), re: Nonce, ...Common }).strict(),
]);
export type Envelope = z.infer<typeof Envelope>;

export function newNonce(): string {
  return randomBytes(16).toString('base64url');
}

export function seal(key: PeerKey, env: Envelope): Buffer {
  const payload = Buffer.from(JSON.stringify(env), 'utf8');
  return Buffer.concat([MAGIC, key.mac(payload), payload]);
}

/** Why a datagram was refused: the `reason` label of vipwarden_peer_rejected_total. */
export type RejectReason =
  | 'oversized'
  | 'rate-limited'
  | 'malformed'
  | 'bad-mac'
  | 'wrong-recipient'
  | 'wrong-node'
  | 'stale'
  | 'replay'
  | 'unsolicited'
  | 'busy';

export type Opened = { ok: true; env: Envelope } | { ok: false; reason: RejectReason; detail: string };

/** Checks the MAC, then the JSON and its shape. Nothing of an unauthenticated datagram is parsed. */
export function open(key: PeerKey, msg: Buffer): Opened {
  if (msg.length <= HEADER_BYTES || !msg.subarray(0, MAGIC.length).equals(MAGIC))
    return { ok: false, reason: 'malformed', detail: 'not a vipwarden peer datagram' };
  const payload = msg.subarray(HEADER_BYTES);
  if (!timingSafeEqual(key.mac(payload), msg.subarray(MAGIC.length, HEADER_BYTES)))
    return { ok: false, reason: 'bad-mac', detail: 'the MAC does not verify' };
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed', detail: 'payload is not JSON' };
  }
  const r = Envelope.safeParse(raw);
  if (!r.success) return { ok: false, reason: 'malformed', detail: issues(r.error) };
  return { ok: true, env: r.data };
}

export function issues(e: z.ZodError): string {
  return e.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}
