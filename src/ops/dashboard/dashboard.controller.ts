import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import {
  Controller,
  Get,
  Header,
  Inject,
  NotFoundException,
  Param,
  Query,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { TrustedProxies } from '../../core/trusted-proxies';
import { DASHBOARD_COOKIE, DashboardAccessGuard, queryTokenValid } from './dashboard-access.guard';
import { DashboardService } from './dashboard.service';

/** The page's own files (src/ops/dashboard/public), found from src/ or from dist/. */
function publicDir(): string {
  const candidates = [
    join(__dirname, 'public'),
    resolve(__dirname, '../../../../src/ops/dashboard/public'),
    resolve(process.cwd(), 'src/ops/dashboard/public'),
  ];
  const found = candidates.find((dir) => existsSync(join(dir, 'index.html')));
  if (!found) throw new Error(`dashboard files not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** uPlot, served from the gateway itself: the page loads nothing from anywhere else. */
function uplotDir(): string {
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

interface Asset {
  type: string;
  body: Buffer;
}

/** Nothing but the gateway's own origin; uPlot sets element styles from script. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

@Controller('dashboard')
@UseGuards(DashboardAccessGuard)
export class DashboardController {
  private readonly assets = new Map<string, Asset>();
  private readonly proxies: TrustedProxies;
  private readonly tls: boolean;

  constructor(
    private readonly dashboard: DashboardService,
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
  ) {
    this.proxies = new TrustedProxies(config.trustedProxies);
    this.tls = config.tls !== undefined;
    const own = publicDir();
    const uplot = uplotDir();
    this.load('index.html', join(own, 'index.html'), 'text/html; charset=utf-8');
    this.load('dashboard.js', join(own, 'dashboard.js'), 'text/javascript; charset=utf-8');
    this.load('dashboard.css', join(own, 'dashboard.css'), 'text/css; charset=utf-8');
    this.load('uPlot.iife.min.js', join(uplot, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8');
    this.load('uPlot.min.css', join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8');
  }

  private load(name: string, file: string, type: string): void {
    this.assets.set(name, { type, body: readFileSync(file) });
  }

  @Get()
  page(@Query('token') token: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): void {
    if (typeof token === 'string') {
      // Taken out of the address bar and history either way. Kept in the cookie only when it is
      // the admin token itself: a stale or mistyped one sent with a valid cookie (access came from
      // the cookie) must not replace that cookie. Secure when the browser reached us over https
      // (ours, or a trusted proxy's): the admin token must never travel in clear. Not on plain
      // http, where the browser would drop it.
      if (queryTokenValid(req)) {
        const secure = this.secure(req) ? '; Secure' : '';
        void reply.header(
          'set-cookie',
          `${DASHBOARD_COOKIE}=${encodeURIComponent(token)}; Path=/dashboard; HttpOnly; SameSite=Strict${secure}`,
        );
      }
      void reply.redirect('/dashboard', 303);
      return;
    }
    this.send(reply, 'index.html');
  }

  @Get('assets/:name')
  asset(@Param('name') name: string, @Res() reply: FastifyReply): void {
    if (!this.assets.has(name) || name === 'index.html') throw new NotFoundException();
    this.send(reply, name);
  }

  @Get('snapshot')
  @Header('cache-control', 'no-store')
  snapshot(@Res() reply: FastifyReply): void {
    void reply.type('application/json').send(this.dashboard.latest?.slice('data: '.length).trim() ?? '{}');
  }

  @Get('stream')
  stream(@Res() reply: FastifyReply): void {
    reply.hijack();
    this.dashboard.attach(reply.raw);
  }

  private secure(req: FastifyRequest): boolean {
    const socket = req.raw.socket as TLSSocket | undefined;
    if (this.tls || socket?.encrypted) return true;
    return this.proxies.publicOrigin(socket?.remoteAddress, req.headers, false).proto === 'https';
  }

  private send(reply: FastifyReply, name: string): void {
    const asset = this.assets.get(name)!;
    void reply
      .header('content-type', asset.type)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .send(asset.body);
  }
}
