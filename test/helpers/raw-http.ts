import { request } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * An HTTP request through node:http, for what fetch() will not send (a forged Host header,
 * say). Reads the whole body unless `firstChunkOnly` (for streams).
 */
export function rawRequest(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    firstChunkOnly?: boolean;
  } = {},
): Promise<RawResponse> {
  return new Promise((ok, fail) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (options.firstChunkOnly) {
          req.destroy();
          ok({ status: res.statusCode ?? 0, headers: res.headers, body });
        }
      });
      res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', fail);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}
