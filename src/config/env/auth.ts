import { z } from 'zod';
import { bool, csv, int } from '../schema-fields';
import { setting } from './setting';

/** Authentication, identity and S5. */
export const AUTH_SETTINGS = {
  AUTH_MODE: setting({
    doc:
      'How clients prove who they are: none, api_key, jwt, oauth, mtls, or a comma-separated list ' +
      '(any one suffices). Unset: none on a loopback bind; on any other bind the gateway refuses to ' +
      'start.',
    schema: csv.pipe(z.array(z.enum(['none', 'api_key', 'jwt', 'oauth', 'mtls'])).min(1)),
  }),
  AUTH_JWT_SECRET: setting({
    doc: 'HS256 secret that signs client JWTs (jwt / oauth modes), at least 32 characters.',
    schema: z.string().min(32, 'use at least 32 characters'),
  }),
  AUTH_JWKS_URL: setting({
    doc:
      'JWKS URL with the RS/ES keys that sign client JWTs; fetched once, refetched on an unknown ' + '`kid`.',
    schema: z.string().url(),
  }),
  AUTH_JWKS_COOLDOWN_MS: setting({
    doc:
      'After a JWKS fetch, how long before a token with an unknown `kid` may trigger another fetch ' +
      '(ms).',
    schema: int(0),
    default: 30_000,
  }),
  AUTH_JWT_ISSUER: setting({
    doc: 'Required `iss` of client JWTs (comma-separated for several).',
    schema: csv,
  }),
  AUTH_JWT_AUDIENCE: setting({
    doc: "Accepted `aud` values; unset in oauth mode: the gateway's canonical resource URL (RFC 8707).",
    schema: csv,
  }),
  AUTH_JWT_CLOCK_TOLERANCE_S: setting({
    doc: 'Clock skew allowed on `exp` / `nbf` (seconds).',
    schema: int(0, 600),
    default: 30,
  }),
  AUTH_JWT_CLIENT_ID_CLAIM: setting({
    doc: 'The JWT claim that names the client.',
    schema: z.string().min(1),
    default: 'sub',
  }),
  AUTH_REQUIRED_SCOPES: setting({
    doc:
      'Scopes every token must carry (oauth / jwt modes); a token without one gets 403 ' +
      'insufficient_scope.',
    schema: csv,
    default: [],
  }),
  AUTH_AUTHORIZATION_SERVERS: setting({
    doc: 'Issuer URLs of the authorization servers named in the protected resource metadata (RFC ' + '9728).',
    schema: csv,
    default: [],
  }),
  AUTH_SCOPES_SUPPORTED: setting({
    doc: '`scopes_supported` of the protected resource metadata; defaults to AUTH_REQUIRED_SCOPES.',
    schema: csv,
  }),
  PUBLIC_URL: setting({
    doc:
      'Public base URL of the gateway (e.g. https://gw.example.com): the OAuth resource is ' +
      '<PUBLIC_URL>/mcp.',
    schema: z.string().url(),
  }),
  AUTH_MTLS_CLIENT_ID: setting({
    doc: "mtls mode: the client id is the certificate subject's CN, or its first DNS / URI SAN.",
    schema: z.enum(['cn', 'san']),
    default: 'cn',
  }),
  AUTH_WS_QUERY_TOKEN: setting({
    doc:
      'Accept a WebSocket token in `?access_token=` (browsers; tokens in URLs end up in logs): off ' +
      'by default.',
    schema: bool,
    default: false,
  }),
  S5_TIMEOUT_MS: setting({
    doc:
      'How long S5 (check_compliance, verify_identity) may take to answer before the default ' +
      'applies (ms).',
    schema: int(1, 60_000),
    default: 250,
  }),
  S5_DEFAULT_VERDICT: setting({
    doc: 'What an unanswered (timed-out or failed) S5 question counts as.',
    schema: z.enum(['allow', 'deny']),
    default: 'allow',
  }),
};
