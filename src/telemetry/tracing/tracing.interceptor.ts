import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { finalize, tap, type Observable } from 'rxjs';
import { headerValue, parentContext } from './trace-context';
import { Tracing } from './tracing';

interface HttpRequestLike {
  method?: string;
  url?: string;
  routeOptions?: { url?: string };
  headers: Record<string, string | string[] | undefined>;
}

interface HttpReplyLike {
  statusCode?: number;
}

/**
 * A SERVER span per request to a Nest controller (admin, health, metrics), with the same tracer
 * as the MCP hot path (which does not run through Nest). Off: one boolean check.
 */
@Injectable()
export class TracingInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!Tracing.enabled || context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const req = http.getRequest<HttpRequestLike>();
    const route = req.routeOptions?.url ?? req.url?.split('?')[0] ?? '';
    const method = req.method ?? 'GET';
    const span = Tracing.tracer.startSpan(
      `${method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': method,
          'http.route': route,
          'url.path': req.url?.split('?')[0] ?? '',
          'network.protocol.name': 'http',
          'network.transport': 'tcp',
        },
      },
      parentContext(headerValue(req.headers.traceparent), headerValue(req.headers.tracestate)),
    );
    let failed = false;
    return next.handle().pipe(
      tap({
        error: (err: unknown) => {
          failed = true;
          const status = (err as { getStatus?: () => number }).getStatus?.() ?? 500;
          span.setAttribute('http.response.status_code', status);
          span.setAttribute('error.type', status >= 500 ? (err as Error).name || 'Error' : String(status));
          if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        },
      }),
      finalize(() => {
        // After an error the exception filter has not written the status yet: the tap recorded it.
        const status = http.getResponse<HttpReplyLike>().statusCode;
        if (!failed && status !== undefined) span.setAttribute('http.response.status_code', status);
        span.end();
      }),
    );
  }
}
