import {
  Inject,
  Injectable,
  Logger,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server as TlsServer } from 'node:tls';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { readTlsFiles, tlsFilesStamp } from './tls';

/**
 * Loads a renewed certificate without a restart: the files are checked on an interval
 * (cheap stat calls) and, when they changed and parse, installed with setSecureContext.
 * Existing connections keep their session; new handshakes use the new certificate.
 * A renewal that does not load (half-written file, key mismatch) is logged and retried.
 */
@Injectable()
export class TlsReloadService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Tls');
  private timer: NodeJS.Timeout | undefined;
  private stamp = '';

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  onApplicationBootstrap(): void {
    const tls = this.config.tls;
    if (!tls || tls.reloadIntervalMs === 0) return;
    this.stamp = tlsFilesStamp(tls);
    this.timer = setInterval(() => this.reloadIfChanged(), tls.reloadIntervalMs);
    this.timer.unref();
  }

  /** Installs the certificate files if they changed since the last load; returns whether it did. */
  reloadIfChanged(): boolean {
    const tls = this.config.tls;
    if (!tls) return false;
    const stamp = tlsFilesStamp(tls);
    if (stamp === this.stamp) return false;
    try {
      const server = this.adapterHost.httpAdapter.getHttpServer() as TlsServer;
      const { cert, key, ca } = readTlsFiles(tls);
      server.setSecureContext({ cert, key, ca });
      this.stamp = stamp;
      this.log.log(`loaded renewed TLS certificate from ${tls.certFile}`);
      return true;
    } catch (err) {
      this.log.error(
        `renewed TLS certificate could not be loaded (keeping the current one): ${(err as Error).message}`,
      );
      return false;
    }
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

@Module({ providers: [TlsReloadService], exports: [TlsReloadService] })
export class TlsModule {}
