/**
 * Lets a long-lived call's loop wait for its next step unless the call must end first.
 *
 * Racing every wait against one promise that stays pending for the whole call
 * (`Promise.race([next, ended])`) adds a reaction to that promise per wait, and each reaction
 * keeps the settled race — and the value it settled with — reachable until the call ends: a
 * BatchAppend call that carries millions of appends would hold every request it ever received.
 * Here only the wait in progress is referenced, and it is dropped once it settles.
 */
export class CallInterrupt {
  private reason: unknown;
  private raised = false;
  private wakeWaiter: (() => void) | undefined;

  get isRaised(): boolean {
    return this.raised;
  }

  /** Why the call must end; the first reason raised wins. */
  get raisedReason(): unknown {
    return this.reason;
  }

  /** Ends the wait in progress (and every later one) at once. */
  raise(reason: unknown): void {
    if (this.raised) return;
    this.raised = true;
    this.reason = reason;
    const wake = this.wakeWaiter;
    this.wakeWaiter = undefined;
    wake?.();
  }

  /**
   * What `step` settles with, or `undefined` if the interrupt is raised first (or already was).
   * One wait at a time: the loop that owns the call is its only caller.
   */
  waitFor<T>(step: Promise<T>): Promise<T | undefined> {
    if (this.raised) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      const wake = () => resolve(undefined);
      this.wakeWaiter = wake;
      const settle = () => {
        if (this.wakeWaiter === wake) this.wakeWaiter = undefined;
      };
      step.then(
        (value) => {
          settle();
          resolve(value);
        },
        (error: unknown) => {
          settle();
          reject(error);
        },
      );
    });
  }
}
