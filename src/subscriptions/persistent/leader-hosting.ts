import type { PersistentSubscriptionHost } from './host.js';

/**
 * Persistent subscription groups live on the leader: hosted once the node may write (its own
 * term's first entry is applied), let go as soon as it may not — their consumers then resubscribe
 * on the new leader, which reads the groups' state back from the log. A handover commits the
 * acknowledgements received so far before leadership moves, so none of them comes back.
 */
export class LeaderHosting {
  private handingOver = false;

  constructor(
    private readonly host: PersistentSubscriptionHost,
    private readonly canWrite: () => boolean,
    private readonly onStartFailure: (error: unknown) => void,
  ) {}

  /** Brings hosting in line with leadership; call it on every status change or periodically. */
  follow(): void {
    if (!this.canWrite()) {
      this.handingOver = false;
      if (this.host.running) void this.host.stop(false, 'this node is no longer the leader; subscribe again to reach the new leader');
      return;
    }
    if (this.handingOver || this.host.running) return;
    this.host.start().catch((error: unknown) => {
      if (this.canWrite()) this.onStartFailure(error);
    });
  }

  /** Commits the groups' acknowledgements, then hands leadership over with `resign`. */
  async handOver(resign: () => boolean): Promise<boolean> {
    if (!this.canWrite()) return false;
    this.handingOver = true;
    await this.host.stop(true, 'the leader is handing over; subscribe again to reach the new leader');
    const handed = resign();
    if (!handed) this.handingOver = false;
    return handed;
  }
}
