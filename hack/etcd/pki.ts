// Throw-away certificates for test etcd clusters, made with openssl at test time: one CA per cluster, one server
// certificate per cluster (serverAuth + clientAuth, so the members use it as peer certificate too) naming every
// listen address, and client certificates made on demand, one per component (CN = the etcd user name).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

const CN_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function opensslConf(cn: string, ext: string[]): string {
  return ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', `CN = ${cn}`, '[ext]', ...ext, ''].join('\n');
}

export class TestPki {
  readonly ca: string;
  private readonly caKey: string;

  /** Makes the CA in `dir` (created, mode 0700). */
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.ca = join(dir, 'ca.crt');
    this.caKey = join(dir, 'ca.key');
    this.make('vipwarden-test-ca', 'ca', [
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
    ]);
  }

  /** The server (and peer) certificate for these IP addresses (plus localhost). */
  server(hosts: readonly string[]): TlsFiles {
    for (const h of hosts) if (!isIP(h)) throw new Error(`pki: not an IP address: ${h}`);
    const san = [...new Set(hosts)].map((h) => `IP:${h}`).join(',');
    return this.make('etcd', 'server', [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth,clientAuth',
      `subjectAltName = ${san},DNS:localhost`,
      'authorityKeyIdentifier = keyid',
    ]);
  }

  /** A client certificate with CN `user` (etcd maps it to that user when auth is on); made once, then reused. */
  client(user: string): TlsFiles {
    if (!CN_RE.test(user)) throw new Error(`pki: bad client name ${JSON.stringify(user)}`);
    const base = `client-${user}`;
    const files = { ca: this.ca, cert: join(this.dir, `${base}.crt`), key: join(this.dir, `${base}.key`) };
    if (existsSync(files.cert) && existsSync(files.key)) return files;
    return this.make(user, base, [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = clientAuth',
      'authorityKeyIdentifier = keyid',
    ]);
  }

  private make(cn: string, base: string, ext: string[]): TlsFiles {
    const conf = join(this.dir, `${base}.cnf`);
    const cert = join(this.dir, `${base}.crt`);
    const key = join(this.dir, `${base}.key`);
    writeFileSync(conf, opensslConf(cn, ext));
    const signer = base === 'ca' ? [] : ['-CA', this.ca, '-CAkey', this.caKey];
    // P-256 keys: a certificate takes a few ms.
    execFileSync(
      'openssl',
      ['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
        .concat(['-keyout', key, '-out', cert, '-days', '7', '-config', conf, '-extensions', 'ext'])
        .concat(signer),
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15_000 },
    );
    return { ca: this.ca, cert, key };
  }
}
