import { execSync } from 'node:child_process';
import { BROKEN_VARIANTS, runSimulation, type BrokenVariant, type SimulationReport } from './simulation.js';

/**
 * `npm run sim -- --seeds 1000` (or `--budget-seconds 600`, or `--seed 42` to replay one).
 * Prints what was covered and, for a failing seed, the trace and the command that replays it.
 */
interface Arguments {
  seeds: number;
  from: number;
  seed: number | undefined;
  budgetSeconds: number | undefined;
  variant: BrokenVariant | undefined;
  faultPhaseMs: number | undefined;
}

function parseArguments(argv: string[]): Arguments {
  const parsed: Arguments = { seeds: 100, from: 1, seed: undefined, budgetSeconds: undefined, variant: undefined, faultPhaseMs: undefined };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    const number = (): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer, got '${value}'`);
      i++;
      return n;
    };
    if (flag === '--seeds') parsed.seeds = number();
    else if (flag === '--from') parsed.from = number();
    else if (flag === '--seed') parsed.seed = number();
    else if (flag === '--budget-seconds') parsed.budgetSeconds = number();
    else if (flag === '--fault-phase-ms') parsed.faultPhaseMs = number();
    else if (flag === '--variant') {
      if (!value || !(value in BROKEN_VARIANTS)) throw new Error(`--variant is one of ${Object.keys(BROKEN_VARIANTS).join(', ')}`);
      parsed.variant = value as BrokenVariant;
      i++;
    } else throw new Error(`unknown option ${flag}; options: --seeds N, --from N, --seed N, --budget-seconds S, --variant V, --fault-phase-ms MS`);
  }
  return parsed;
}

function commit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  let args: Arguments;
  try {
    args = parseArguments(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
  const started = performance.now();
  const seeds = args.seed !== undefined ? [args.seed] : undefined;
  const faults: Record<string, number> = {};
  let simulatedMs = 0;
  let runs = 0;
  let operations = 0;
  const failures: SimulationReport[] = [];
  for (let n = 0; ; n++) {
    const seed = seeds ? seeds[n] : args.from + n;
    if (seed === undefined) break;
    if (!seeds && args.budgetSeconds === undefined && n >= args.seeds) break;
    if (args.budgetSeconds !== undefined && (performance.now() - started) / 1000 >= args.budgetSeconds) break;
    const report = await runSimulation({ seed, ...(args.variant ? { variant: args.variant } : {}), ...(args.faultPhaseMs ? { faultPhaseMs: args.faultPhaseMs } : {}) });
    runs++;
    simulatedMs += report.simulatedMs;
    for (const [kind, value] of Object.entries(report.faultsInjected)) faults[kind] = (faults[kind] ?? 0) + value;
    for (const value of Object.values(report.operations)) operations += value;
    if (report.violations.length > 0) {
      failures.push(report);
      printFailure(report, args);
      if (!seeds) break;
    }
  }
  const wallSeconds = (performance.now() - started) / 1000;
  console.log(`seeds run: ${runs}${args.variant ? ` (broken variant ${args.variant})` : ''}`);
  console.log(`simulated: ${(simulatedMs / 3_600_000).toFixed(2)} h in ${wallSeconds.toFixed(1)} s wall (${(simulatedMs / 1000 / wallSeconds).toFixed(0)} simulated s per wall s)`);
  console.log(`client operations: ${operations}`);
  console.log(`faults injected: ${Object.entries(faults).sort().map(([kind, value]) => `${kind} ${value}`).join(', ') || 'none'}`);
  console.log(failures.length === 0 ? 'no violations' : `${failures.length} failing seed(s)`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

function printFailure(report: SimulationReport, args: Arguments): void {
  console.log(`\nFAILED seed ${report.seed} at commit ${commit()} (${report.nodes} voters, ${report.learners} learners, pre-vote ${report.preVote ? 'on' : 'off'}, check-quorum ${report.checkQuorum ? 'on' : 'off'})`);
  console.log(`fault classes: ${Object.entries(report.faultClasses).filter(([, on]) => on).map(([kind]) => kind).join(', ') || 'none'}`);
  for (const violation of report.violations.slice(0, 10)) console.log(`  [${violation.checker}] at ${violation.atMs} ms: ${violation.detail}`);
  console.log('last trace lines:');
  for (const line of report.trace) console.log(`  ${line}`);
  const variant = args.variant ? ` --variant ${args.variant}` : '';
  const phase = args.faultPhaseMs ? ` --fault-phase-ms ${args.faultPhaseMs}` : '';
  console.log(`replay: npm run sim -- --seed ${report.seed}${variant}${phase}\n`);
}

await main();
