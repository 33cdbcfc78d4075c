import { Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { VsmChannel } from '../vsm/vsm.channels';
import { VsmBus } from '../vsm/vsm-bus.service';

/**
 * Counts the commands other systems send on S3, the channel the gateway obeys (rare events).
 * Only S3: the gateway's own S3 listeners are there anyway, whereas a listener on S5 (or S1, S2)
 * would change what "nobody listens" means to the code that asks there.
 */
@Injectable()
export class VsmCommandCounter {
  constructor(private readonly vsm: VsmBus) {}

  @OnEvent(VsmChannel.S3Control)
  s3(): void {
    this.vsm.received.s3_control++;
  }
}
