import { readFileSync } from 'node:fs';

/**
 * CPU time a process has used so far, in µs: user and system time of all its threads, from
 * /proc/PID/stat (clock ticks, 100 per second on Linux, so a reading is good to 10 ms).
 */
export function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}
