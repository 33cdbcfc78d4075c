import type { ServerResponse } from 'node:http';
import type { JsonRpcId } from '../../../libs/protocol/src/jsonrpc';
import type { GatewayConfig } from '../../config/gateway-config';
import type { SessionRegistry } from '../../session/session-registry';
import type { Admission } from '../../policy/admission';
import type { MessagePolicy } from '../../policy/message-policy';
import type { ErrorBoundary } from '../error-boundary';
import { sendJsonRpcError } from '../http/http-reply';
import type { KeepAliveTicker } from '../http/keep-alive-ticker';

/*
 * What every file of the Streamable HTTP transport shares: what it needs from the rest of the
 * gateway, and the one way it refuses a request. A leaf: the route handler, the sessionless
 * bridge and its per-request channels all import it, and it imports none of them.
 */

/** What the transport needs from the rest of the gateway (plain objects: no Nest here). */
export interface StreamableHttpDeps {
  config: Pick<
    GatewayConfig,
    | 'host'
    | 'allowedHosts'
    | 'allowedOrigins'
    | 'sse'
    | 'enableSessionless'
    | 'defaultService'
    | 'maxJsonDepth'
    | 'session'
    | 'sessionlessMaxBridges'
    | 'sessionlessInput'
  >;
  sessions: SessionRegistry;
  hasService(service: string): boolean;
  metrics: { error(kind: string): void };
  keepAlive: KeepAliveTicker | undefined;
  /** Where unexpected failures (a bug, never a client mistake) are answered, logged and counted. */
  boundary: ErrorBoundary;
  /** Authentication and session admission (src/policy); absent in unit specs: claimed ids, no checks. */
  admission?: Admission;
  /** Per-message policy (rate limits, authorization); absent in unit tests. */
  policy?: MessagePolicy;
}

/** A refusal: HTTP status, JSON-RPC code, message, and the metric kind it is counted under. */
export function refuse(
  deps: Pick<StreamableHttpDeps, 'metrics'>,
  res: ServerResponse,
  status: number,
  code: number,
  kind: string,
  message: string,
  options?: { id?: JsonRpcId | null; data?: unknown; headers?: Record<string, string> },
): void {
  deps.metrics.error(kind);
  sendJsonRpcError(res, status, code, message, options);
}

/** A request header's value; the first one when it came several times. */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : Array.isArray(value) ? value[0] : undefined;
}
