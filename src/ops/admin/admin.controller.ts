import {
  BadRequestException,
  Body,
  ConflictException,
  Controller,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  Patch,
  Post,
} from '@nestjs/common';
import { z } from 'zod';
import type { ReplicaConfig, ResolvedReplica } from '../../config/gateway-config';
import { ServicesSchema } from '../../config/gateway-file-schema';
import { ReplicaSchema, ServiceSchema } from '../../config/service-schema';
import { derivedReplicaId } from '../../config/replica-id';
import { AdminRoute } from './admin-route.decorator';
import { ConfigReloadService } from './config-reload.service';
import {
  DuplicateReplicaError,
  Router,
  UnknownReplicaError,
  UnknownServiceError,
} from '../../routing/router.service';
import type { ReplicaView, ServiceView } from '../../routing/routing-table';

const PatchSchema = z
  .object({
    weight: z.number().int().min(1).max(1000).optional(),
    draining: z.boolean().optional(),
  })
  .strict()
  .refine((p) => p.weight !== undefined || p.draining !== undefined, 'set weight and/or draining');

/** The `/mcp/<service>` segment the transports route by (see ENDPOINT_PATH in policy/admission.ts). */
const SERVICE_NAME = /^[A-Za-z0-9._~-]{1,128}$/;

const ServicePatchSchema = ServiceSchema.omit({ replicas: true })
  .partial()
  .strict()
  .refine((p) => Object.keys(p).length > 0, 'set mode, pool, breaker and/or routing');

/**
 * Live changes to services and replicas (README "Routing"). Changes take effect for new sessions at
 * once and are not written back to gateway.yaml: a restart starts from the file again.
 */
@Controller('admin')
@AdminRoute()
export class AdminController {
  constructor(
    private readonly router: Router,
    private readonly reload: ConfigReloadService,
  ) {}

  @Get('services')
  services() {
    return { defaultService: this.router.defaultService, services: this.router.view() };
  }

  @Get('config')
  config() {
    return this.reload.fileStatus();
  }

  /**
   * Adds a service live, with the same body as a service of gateway.yaml (mode, pool, breaker,
   * routing, replicas): new sessions for it use its own mode and pool settings at once.
   */
  @Post('services/:service')
  @HttpCode(201)
  addService(@Param('service') service: string, @Body() body: unknown): ServiceView {
    // A service is reached at /mcp/<name>: a name that is not one URL segment could never be used,
    // and `__proto__` became the prototype of the parsed record (a TypeError, answered 500).
    if (!SERVICE_NAME.test(service) || service === '__proto__') {
      throw new BadRequestException(`service names are 1-128 of A-Z a-z 0-9 . _ ~ - (not "__proto__")`);
    }
    if (this.router.hasService(service)) throw new ConflictException(`service "${service}" already exists`);
    const parsed = ServicesSchema.safeParse({ [service]: json(body) });
    if (!parsed.success) throw invalid(parsed.error);
    try {
      this.router.addService(service, parsed.data[service]);
    } catch (err) {
      throw mapped(err);
    }
    return this.service(service);
  }

  /**
   * Changes a live service's mode, pool or breaker settings: new sessions use the new mode, a
   * pooled service's pools are resized at once, breakers take the new thresholds.
   */
  @Patch('services/:service')
  updateService(@Param('service') service: string, @Body() body: unknown): ServiceView {
    const view = this.service(service);
    const parsed = ServicePatchSchema.safeParse(json(body));
    if (!parsed.success) throw invalid(parsed.error);
    const current = this.router.serviceSettings(service)!;
    this.router.updateService(service, {
      mode: parsed.data.mode ?? current.mode,
      routing: parsed.data.routing ?? view.routing,
      ...('pool' in parsed.data ? { pool: parsed.data.pool } : {}),
      ...('breaker' in parsed.data ? { breaker: parsed.data.breaker } : {}),
    });
    return this.service(service);
  }

  @Post('services/:service/replicas')
  @HttpCode(201)
  add(@Param('service') service: string, @Body() body: unknown): ReplicaView {
    this.service(service);
    const parsed = ReplicaSchema.safeParse(json(body));
    if (!parsed.success) throw invalid(parsed.error);
    const replica: ReplicaConfig = parsed.data;
    let id = replica.id;
    if (id === undefined) {
      const base = derivedReplicaId(service, replica);
      id = base;
      for (let n = 2; this.router.ownerOf(id) !== undefined; n++) id = `${base}-${n}`;
    }
    try {
      this.router.addReplica(service, { ...replica, id } as ResolvedReplica);
    } catch (err) {
      throw mapped(err);
    }
    return this.view(service, id);
  }

  @Patch('services/:service/replicas/:id')
  update(@Param('service') service: string, @Param('id') id: string, @Body() body: unknown): ReplicaView {
    const parsed = PatchSchema.safeParse(json(body));
    if (!parsed.success) throw invalid(parsed.error);
    try {
      this.router.updateReplica(service, id, parsed.data);
    } catch (err) {
      throw mapped(err);
    }
    return this.view(service, id);
  }

  @Delete('services/:service/replicas/:id')
  @HttpCode(204)
  remove(@Param('service') service: string, @Param('id') id: string): void {
    const replicas = this.service(service).replicas;
    // As in gateway.yaml, a service keeps at least one replica (drain it to stop new sessions).
    if (replicas.length === 1 && replicas[0].id === id) {
      throw new ConflictException(`"${id}" is the last replica of "${service}"; drain it instead`);
    }
    try {
      this.router.removeReplica(service, id);
    } catch (err) {
      throw mapped(err);
    }
  }

  private service(name: string) {
    const view = this.router.view().find((s) => s.name === name);
    if (!view) throw new NotFoundException(`unknown service "${name}"`);
    return view;
  }

  private view(service: string, id: string): ReplicaView {
    return this.service(service).replicas.find((r) => r.id === id)!;
  }
}

/** Bodies reach controllers as raw Buffers (see transports/http/raw-body.ts). */
function json(body: unknown): unknown {
  if (!Buffer.isBuffer(body)) return body ?? {};
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new BadRequestException('body is not valid JSON');
  }
}

function invalid(error: z.ZodError): BadRequestException {
  const problems = error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
  return new BadRequestException({
    statusCode: 400,
    error: 'Bad Request',
    message: problems.join('; '),
    problems,
  });
}

function mapped(err: unknown): Error {
  if (err instanceof UnknownServiceError || err instanceof UnknownReplicaError) {
    return new NotFoundException(err.message);
  }
  if (err instanceof DuplicateReplicaError) return new ConflictException(err.message);
  return err as Error;
}
