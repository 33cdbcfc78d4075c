import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '../../../libs/protocol/src';
import type { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import { sendJsonRpcError } from './http-reply';

/**
 * Route-level error handler for the MCP endpoints: errors Fastify raises before our
 * handler runs (body too large, broken body stream) become JSON-RPC error bodies.
 */
export function mcpErrorHandler(metrics: GatewayMetrics, maxBodyBytes: number) {
  return function handleError(error: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
    reply.hijack();
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || error.statusCode === 413) {
      metrics.error('body_too_large');
      sendJsonRpcError(
        reply.raw,
        413,
        ErrorCode.InvalidRequest,
        `Request body exceeds ${maxBodyBytes} bytes`,
      );
      return;
    }
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    metrics.error(status === 500 ? 'internal' : 'bad_request');
    sendJsonRpcError(
      reply.raw,
      status,
      status === 500 ? ErrorCode.InternalError : ErrorCode.InvalidRequest,
      status === 500 ? 'Internal error' : error.message,
    );
  };
}
