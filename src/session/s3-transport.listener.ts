import { Injectable, Logger } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { VsmChannel, type S3Event } from '../vsm/vsm.channels';
import { isClientTransport } from './client-transport-guard';
import { ClientTransportGuardService } from './client-transport-guard.service';

/**
 * S3 commands that name a client transport (`streamable`, `sse`, `ws`): `allocate_connections`
 * sets the cap of live sessions on it (0: no cap), `force_circuit_state` pins its breaker
 * (`half_open` hands it back to the statistics, as for replicas). Upstream kinds and replicas
 * are the pool's listener's.
 */
@Injectable()
export class S3TransportListener {
  private readonly log = new Logger('S3');

  constructor(private readonly guard: ClientTransportGuardService) {}

  @OnEvent(VsmChannel.S3Control)
  handle(event: S3Event): void {
    if (event.type === 'allocate_connections') {
      if (!isClientTransport(event.transport)) return;
      this.guard.setCap(event.transport, event.count);
      this.log.log(`allocate_connections ${event.transport} → ${event.count > 0 ? event.count : 'no cap'}`);
      return;
    }
    if (event.type !== 'force_circuit_state' || !isClientTransport(event.transport)) return;
    this.guard.force(event.transport, event.state === 'half_open' ? 'auto' : event.state);
    this.log.log(`force_circuit_state ${event.transport} → ${event.state}`);
  }
}
