import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A client certificate and its key, as node:https / undici take them. */
export interface ClientCert {
  cert: Buffer;
  key: Buffer;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * A test CA in `dir` (openssl, made at run time: no key material in the repository) that signs
 * client certificates with any subject CN, and a DNS subject alternative name when `dnsName` is
 * given. `caFile` is what TLS_CA_FILE takes.
 */
export function clientCa(dir: string): {
  caFile: string;
  issue(commonName: string, dnsName?: string): ClientCert;
} {
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  run([
    'req',
    '-x509',
    ...EC,
    '-days',
    '2',
    '-subj',
    '/CN=test-client-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
  ]);
  let serial = 0;
  return {
    caFile: join(dir, 'ca.pem'),
    issue(commonName: string, dnsName?: string): ClientCert {
      const base = `client-${++serial}`;
      const san = dnsName === undefined ? '' : `subjectAltName=DNS:${dnsName}\n`;
      writeFileSync(join(dir, `${base}-ext.cnf`), `${san}extendedKeyUsage=clientAuth\n`);
      // -subj takes `/` and `=` as separators: a CN containing them is escaped with a backslash.
      const cn = commonName.replace(/[/=\\]/g, (c) => `\\${c}`);
      run(['req', ...EC, '-subj', `/CN=${cn}`, '-keyout', `${base}.key`, '-out', `${base}.csr`]);
      run([
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        `${base}-ext.cnf`,
        '-out',
        `${base}.pem`,
      ]);
      return { cert: readFileSync(join(dir, `${base}.pem`)), key: readFileSync(join(dir, `${base}.key`)) };
    },
  };
}
