import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * A benchmark's command line. `--help` prints its usage and exits 0; an unknown option, a
 * missing value or a value out of range prints one line naming it, then the usage, and exits 2,
 * as the node's own command line does — never a stack trace.
 */
export class BenchArguments {
  constructor(private readonly usage: string) {}

  parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
    const args = config.args ?? process.argv.slice(2);
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(`${this.usage.trim()}\n`);
      process.exit(0);
    }
    try {
      return parseArgs(config);
    } catch (error) {
      return this.fail((error as Error).message);
    }
  }

  fail(message: string): never {
    process.stderr.write(`${message}\n\n${this.usage.trim()}\n`);
    process.exit(2);
  }

  /** A number of seconds (or any quantity) above zero. */
  positiveNumber(option: string, text: string): number {
    const value = Number(text);
    if (!(Number.isFinite(value) && value > 0)) this.fail(`--${option} must be a number above 0, not '${text}'`);
    return value;
  }

  /** A count of at least `minimum`. */
  integer(option: string, text: string, minimum: number): number {
    const value = Number(text);
    if (!Number.isInteger(value) || value < minimum) this.fail(`--${option} must be an integer of at least ${minimum}, not '${text}'`);
    return value;
  }
}
