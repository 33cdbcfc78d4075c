import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { S4Intelligence } from './stats/s4-intelligence.service';
import { AlertsService } from './alerts/alerts.service';
import { DashboardController } from './dashboard/dashboard.controller';
import { DashboardService } from './dashboard/dashboard.service';
import { DashboardAccessGuard } from './dashboard/dashboard-access.guard';
import { StatsSampler } from './stats/stats-sampler.service';

/**
 * Once-a-second stats behind /dashboard, the in-process alerts and VSM S4 (which reads the
 * VsmModule's ClientUsage).
 */
@Module({
  // The stats sampler finds what each layer reports (STATS_SOURCE) with DiscoveryService.
  imports: [DiscoveryModule],
  controllers: [DashboardController],
  providers: [StatsSampler, AlertsService, S4Intelligence, DashboardService, DashboardAccessGuard],
  exports: [StatsSampler, AlertsService],
})
export class MonitoringModule {}
