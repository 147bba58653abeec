/**
 * The live subscriptions of a node, whatever carries them, and how far behind the committed log
 * each is: what the metrics report. A subscription says where it has got to (the commit position
 * of what it delivered, or the log's end once caught up); its lag is the distance from there to
 * the committed position, in bytes of log.
 */
export interface TrackedSubscription {
  reached(commitPosition: number): void;
  close(): void;
}

export interface SubscriptionSnapshot {
  transport: string;
  open: number;
  maxLagBytes: number;
}

export class SubscriptionTracker {
  private readonly open = new Map<string, Set<{ position: number }>>();

  constructor(private readonly committedPosition: () => number) {}

  track(transport: string): TrackedSubscription {
    let set = this.open.get(transport);
    if (!set) {
      set = new Set();
      this.open.set(transport, set);
    }
    // Nothing delivered yet: behind by the whole log until the first page says otherwise.
    const entry = { position: 0 };
    set.add(entry);
    const owner = set;
    return {
      reached: (commitPosition) => {
        if (commitPosition > entry.position) entry.position = commitPosition;
      },
      close: () => owner.delete(entry),
    };
  }

  /** One line per transport ever seen (zero when none is open, so the series does not vanish). */
  snapshot(): SubscriptionSnapshot[] {
    const end = this.committedPosition();
    return [...this.open].map(([transport, entries]) => {
      let maxLagBytes = 0;
      for (const entry of entries) maxLagBytes = Math.max(maxLagBytes, end - entry.position);
      return { transport, open: entries.size, maxLagBytes };
    });
  }
}
