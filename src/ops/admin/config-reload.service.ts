import { readFile } from 'node:fs/promises';
import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { ClientConfig, GatewayConfig, ServiceConfig } from '../../config/gateway-config';
import { parseServicesFile, servicesOrDemo } from '../../config/load-config';
import type { ClientPolicies } from '../../config/client-policy-schema';
import { MessagePolicy } from '../../policy/message-policy';
import { AdmissionService } from '../../policy/policy.module';
import { ConfigFileWatcher } from './config-file-watcher';
import { Router } from '../../routing/router.service';
import { applyServicesEdit, editProblems, type EditSummary } from '../../routing/services-edit';

/** What the admin API reports about the watched file. */
export interface ConfigFileStatus {
  path: string | undefined;
  watching: boolean;
  /** When the running services last changed from the file (start-up counts). */
  appliedAt: string | undefined;
  lastApplied: EditSummary | undefined;
  /** The last edit that was refused, with every problem; cleared by the next good edit. */
  refused: { at: string; problems: string[] } | undefined;
}

/**
 * Watches gateway.yaml and applies each valid edit to the routing table live. An edit is checked
 * with the start-up schema; a bad one is refused as a whole — one log line lists every problem —
 * and the last good configuration stays. Only services and replicas change live; environment
 * settings need a restart.
 */
@Injectable()
export class ConfigReloadService implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger('GatewayConfig');
  private watcher: ConfigFileWatcher | undefined;
  /** The services of the last applied version of the file. */
  private applied: Record<string, ServiceConfig>;
  private lastText: string | undefined;
  private reading = false;
  private again = false;
  private readonly status: ConfigFileStatus;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly router: Router,
    /** Takes the file's `clients:` section (rate limits, authorization) on every applied edit. */
    @Optional() private readonly policy?: MessagePolicy,
    /** Takes the same section's API keys and `disabled` flags (a key removed from the file stops working). */
    @Optional() private readonly admission?: AdmissionService,
  ) {
    this.applied = config.services;
    this.status = {
      path: config.configFile?.path,
      watching: false,
      appliedAt: config.configFile ? new Date().toISOString() : undefined,
      lastApplied: undefined,
      refused: undefined,
    };
  }

  async onModuleInit(): Promise<void> {
    const file = this.config.configFile;
    if (!file?.watch) return;
    // What start-up loaded: an event for the same content is not an edit.
    this.lastText = await readFile(file.path, 'utf8').catch(() => undefined);
    this.watcher = new ConfigFileWatcher(
      file.path,
      file.pollIntervalMs,
      () => void this.reload(),
      (m) => this.log.warn(m),
    );
    this.watcher.start();
    this.status.watching = true;
  }

  onApplicationShutdown(): void {
    this.watcher?.stop();
  }

  fileStatus(): ConfigFileStatus {
    return this.status;
  }

  /** Reads the file and applies it if it changed and is valid. Never throws; one reload at a time. */
  async reload(): Promise<void> {
    const path = this.config.configFile?.path;
    if (!path) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.again = false;
        await this.reloadOnce(path);
      } while (this.again);
    } catch (err) {
      this.log.error(`applying ${path} failed: ${(err as Error).message}`);
    } finally {
      this.reading = false;
    }
  }

  private async reloadOnce(path: string): Promise<void> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      // Mid-rename or deleted: the running configuration stays; the next event tries again.
      this.refuse([`${path}: ${(err as Error).message}`]);
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    const parsed = parseServicesFile(path, text);
    if (!parsed.ok) {
      this.refuse(parsed.problems);
      return;
    }
    const next = servicesOrDemo(parsed.file.services);
    const current = this.router.defaultService;
    const defaultService = parsed.file.defaultService ?? (next[current] ? current : Object.keys(next)[0]);
    const problems = editProblems(this.router, this.applied, next, defaultService);
    if (problems.length > 0) {
      this.refuse(problems.map((p) => `${path}: ${p}`));
      return;
    }
    const summary = applyServicesEdit(this.router, this.applied, next, defaultService);
    // The file was parsed with FileSchema: its clients carry policies and credentials alike.
    const clients = (parsed.file as { clients?: Record<string, ClientConfig> }).clients ?? {};
    this.policy?.setClients(clients as ClientPolicies);
    this.admission?.setClients(clients);
    this.applied = next;
    this.status.appliedAt = new Date().toISOString();
    this.status.lastApplied = summary;
    this.status.refused = undefined;
    this.log.log(`applied ${path}: ${describeSummary(summary)}`);
  }

  private refuse(problems: string[]): void {
    this.status.refused = { at: new Date().toISOString(), problems };
    // One line with every problem, so an operator (and a log search) sees the whole verdict at once.
    this.log.error(
      `refused the edit of gateway.yaml, the last good configuration stays (${problems.length} problem${
        problems.length === 1 ? '' : 's'
      }): ${problems.join('; ')}`,
    );
  }
}

function describeSummary(s: EditSummary): string {
  const parts: string[] = [];
  if (s.servicesAdded.length) parts.push(`services added ${s.servicesAdded.join(', ')}`);
  if (s.servicesRemoved.length) parts.push(`services removed ${s.servicesRemoved.join(', ')}`);
  if (s.servicesChanged.length) parts.push(`services changed ${s.servicesChanged.join(', ')}`);
  if (s.replicasAdded.length) parts.push(`replicas added ${s.replicasAdded.join(', ')}`);
  if (s.replicasRemoved.length) parts.push(`replicas removed ${s.replicasRemoved.join(', ')}`);
  if (s.replicasChanged.length) parts.push(`replicas changed ${s.replicasChanged.join(', ')}`);
  return parts.join('; ') || 'no routing change';
}
