import type { PersistentSubscriptionHost } from './host.js';

/**
 * Persistent subscription groups live on the leader: hosted once the node may write (its own
 * term's first entry is applied), let go as soon as it may not — their consumers then resubscribe
 * on the new leader, which reads the groups' state back from the log. A handover commits the
 * acknowledgements received so far before leadership moves, so none of them comes back.
 */
export class LeaderHosting {
  /** Stopping the groups before a handover, then waiting for the transfer to end. */
  private handover: 'none' | 'stopping' | 'transferring' = 'none';

  /**
   * @param transferring whether the transfer started by a handover is still under way; one that
   *   gave up (its target never caught up) leaves this node leading, and the groups come back
   *   (the host confirms leadership before it loads them: see `HostEnvironment.confirmLeadership`).
   */
  constructor(
    private readonly host: PersistentSubscriptionHost,
    private readonly canWrite: () => boolean,
    private readonly onStartFailure: (error: unknown) => void,
    private readonly transferring: () => boolean,
  ) {}

  /** Brings hosting in line with leadership; call it on every status change or periodically. */
  follow(): void {
    if (!this.canWrite()) {
      this.handover = 'none';
      if (this.host.running) void this.host.stop(false, 'this node is no longer the leader; subscribe again to reach the new leader');
      return;
    }
    if (this.handover === 'transferring' && !this.transferring()) this.handover = 'none';
    if (this.handover !== 'none' || this.host.running) return;
    this.host.start().catch((error: unknown) => {
      if (this.canWrite()) this.onStartFailure(error);
    });
  }

  /** Commits the groups' acknowledgements, then hands leadership over with `resign`. */
  async handOver(resign: () => boolean): Promise<boolean> {
    if (!this.canWrite()) return false;
    this.handover = 'stopping';
    await this.host.stop(true, 'the leader is handing over; subscribe again to reach the new leader');
    const handed = resign();
    this.handover = handed ? 'transferring' : 'none';
    return handed;
  }
}
