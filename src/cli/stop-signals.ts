/** What `stopOnSignals` listens on: `process`, or a stand-in in tests. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/**
 * Calls `stop` on the first SIGTERM or SIGINT. The handlers stay until the returned function
 * removes them (once the node has stopped): a signal repeated meanwhile is only reported. Under
 * `npm start` a Ctrl-C reaches the node twice (from the terminal, and forwarded by npm), and
 * without a handler Node's default for the second would kill the node halfway through its stop.
 */
export function stopOnSignals(source: SignalSource, stop: () => void, report: (signal: NodeJS.Signals, repeated: boolean) => void): () => void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    report(signal, signalled);
    if (signalled) return;
    signalled = true;
    stop();
  };
  for (const signal of STOP_SIGNALS) source.on(signal, onSignal);
  return () => {
    for (const signal of STOP_SIGNALS) source.off(signal, onSignal);
  };
}
