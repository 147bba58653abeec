/** Errors of the storage layer. They are fatal for the node: it must stop, not guess. */
export class LogCorruptionError extends Error {
  override readonly name = 'LogCorruptionError';
  constructor(
    readonly file: string,
    readonly fileOffset: number,
    readonly logPosition: number,
    detail: string,
  ) {
    super(
      `log corruption in ${file} at byte ${fileOffset} (log position ${logPosition}): ${detail}. ` +
        `Data before the durable tail is damaged; the node will not start on it. ` +
        `See docs/operations.md ("Repairing a damaged log") for the repair path.`,
    );
  }
}

/** A write or fsync failed: the log can no longer promise durability and refuses all further work. */
export class LogFailedError extends Error {
  override readonly name = 'LogFailedError';
  constructor(override readonly cause: unknown) {
    super(`the log failed and stopped accepting writes: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

export class LogClosedError extends Error {
  override readonly name = 'LogClosedError';
  constructor() {
    super('the log is closed');
  }
}
