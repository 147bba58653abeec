import { readFileSync } from 'node:fs';

/**
 * CPU time a process has used so far, in µs: user and system time of all its threads, from
 * /proc/PID/stat (clock ticks, 100 per second on Linux, so a reading is good to 10 ms).
 */
export function cpuMicros(pid: number): number {
  // The fields follow the command name, in parentheses, which may itself hold ') '.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}
