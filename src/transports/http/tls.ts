import { readFileSync, statSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import type { GatewayConfig } from '../../config/gateway-config';

export type TlsConfig = NonNullable<GatewayConfig['tls']>;

/** Reads the certificate, key and CA files into the options Node's TLS server takes. */
export function readTlsFiles(tls: TlsConfig): SecureContextOptions & {
  requestCert: boolean;
  rejectUnauthorized: boolean;
} {
  return {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    ca: tls.caFile ? readFileSync(tls.caFile) : undefined,
    requestCert: tls.clientCert !== 'none',
    // 'request' asks for a certificate but lets every client in (with none, or one that did not
    // verify: socket.authorized tells which); 'require' refuses the handshake without a valid one.
    rejectUnauthorized: tls.clientCert === 'require',
  };
}

/** A fingerprint of the files' identity (mtime + size) so a renewal is noticed without reading them. */
export function tlsFilesStamp(tls: TlsConfig): string {
  return [tls.certFile, tls.keyFile, tls.caFile]
    .filter((f): f is string => Boolean(f))
    .map((f) => {
      try {
        const st = statSync(f);
        return `${st.mtimeMs}:${st.size}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}
