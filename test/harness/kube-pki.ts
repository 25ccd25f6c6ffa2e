// The throwaway PKI and kubeconfigs of the test Kubernetes API (kube.ts), made with openssl in its work dir.
import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { CommandError } from '../../common/exec.js';

/** The address of the "kubernetes" Service, named in the serving certificate. */
export const SERVICE_IP = '10.96.0.1';

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  const r = await execa('openssl', args, { cwd, reject: false, stdin: 'ignore', timeout: 60_000 });
  if (r.exitCode !== 0) throw new CommandError(['openssl', ...args], r.exitCode, String(r.stderr ?? ''));
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Key and certificate `name`.{key,crt} signed by ca.{key,crt}, with the given subject and extensions. */
async function issueCert(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  await openssl(['req', '-new', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '7',
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

export interface Pki {
  caCrt: string;
  servingCrt: string;
  servingKey: string;
  adminCrt: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

/** A throwaway CA, the serving certificate, an admin client certificate and the service-account signing key. */
export async function makePki(dir: string): Promise<Pki> {
  await openssl(
    [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '7',
      '-sha256',
      '-subj',
      '/CN=vipwarden-test-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  await issueCert(
    dir,
    'serving',
    '/CN=kube-apiserver',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' +
      `subjectAltName=IP:127.0.0.1,IP:${SERVICE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,` +
      'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n',
  );
  await issueCert(
    dir,
    'admin',
    '/O=system:masters/CN=vipwarden-admin',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
  );
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'sa.key'], dir);
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  const p = (f: string): string => join(dir, f);
  return {
    caCrt: p('ca.crt'),
    servingCrt: p('serving.crt'),
    servingKey: p('serving.key'),
    adminCrt: p('admin.crt'),
    adminKey: p('admin.key'),
    saKey: p('sa.key'),
    saPub: p('sa.pub'),
  };
}

export type KubeconfigUser = { token: string } | { clientCertificate: string; clientKey: string };

export function writeKubeconfig(
  path: string,
  server: string,
  caCrt: string,
  userName: string,
  user: KubeconfigUser,
): void {
  const b64 = (f: string): string => readFileSync(f).toString('base64');
  const userEntry =
    'token' in user
      ? { token: user.token }
      : { 'client-certificate-data': b64(user.clientCertificate), 'client-key-data': b64(user.clientKey) };
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'vipwarden-test', cluster: { server, 'certificate-authority-data': b64(caCrt) } }],
    users: [{ name: userName, user: userEntry }],
    contexts: [{ name: userName, context: { cluster: 'vipwarden-test', user: userName } }],
    'current-context': userName,
    preferences: {},
  };
  writeFileSync(path, toYaml(doc), { mode: 0o600 });
}
