import type { FastifyInstance } from 'fastify';

/**
 * Every request body arrives as a Buffer, whatever its Content-Type: the transports check
 * the media type themselves (415 with a JSON-RPC error) and parse JSON once (−32700 on failure).
 */
export function registerRawBodyParser(fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
}
