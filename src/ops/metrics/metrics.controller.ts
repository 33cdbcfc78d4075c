import { Controller, Get, Res, UseGuards } from '@nestjs/common';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import type { FastifyReply } from 'fastify';
import { MetricsTokenGuard } from './metrics-token.guard';
import { MetricsService } from './metrics.service';

/**
 * GET /metrics (the path PrometheusModule gives it): this gateway's registry, not prom-client's
 * global one, so several gateways in one process (tests, embedders) each report their own.
 */
@Controller()
@UseGuards(MetricsTokenGuard)
export class MetricsController extends PrometheusController {
  constructor(private readonly metrics: MetricsService) {
    super();
  }

  @Get()
  override async index(@Res({ passthrough: true }) response: FastifyReply): Promise<string> {
    void response.header('content-type', this.metrics.contentType);
    void response.header('cache-control', 'no-store');
    return this.metrics.exposition();
  }
}
