import type { SignalApplier, SignalOutcome } from './apply';
import type { SetReceiver } from './set';

/**
 * Push delivery of a Security Event Token (RFC 8935 §2): verified against the configured
 * transmitters, then applied durably (or recognised as a replay) before it is acknowledged.
 */
export class SignalIntake {
  constructor(
    private readonly receiver: Pick<SetReceiver, 'receive'>,
    private readonly applier: Pick<SignalApplier, 'apply' | 'refused'>,
  ) {}

  async deliver(body: string, contentType: string | undefined): Promise<SignalOutcome> {
    return this.applier.apply(await this.receiver.receive(body, contentType));
  }

  /** Records a delivery refused before it could be read as a SET (RFC 8935 §2.4 error). */
  refused(refusal: { readonly err: string; readonly description: string }): Promise<void> {
    return this.applier.refused(refusal);
  }
}
