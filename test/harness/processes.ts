/**
 * Finding and stopping what a test started as a process tree (`make run`'s script in its own
 * process group, and the services it starts): by the process group and by a temporary folder
 * that every such process names on its command line, never by a program's name.
 */
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface FoundProcess {
  readonly pid: number;
  readonly cmdline: string;
}

/** Processes whose command line mentions `needle`, except zombies and this process. */
export function processesMentioning(needle: string): FoundProcess[] {
  const found: FoundProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (cmdline.includes(needle) && !/^\d+ \(.*\) Z/.test(stat)) found.push({ pid: Number(entry), cmdline });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Sends `signal` to the process group `child` leads (it was spawned with `detached: true`). */
export function signalGroup(child: ChildProcess | undefined, signal: NodeJS.Signals): void {
  try {
    if (child?.pid) process.kill(-child.pid, signal);
  } catch {
    // Gone.
  }
}

/** True once `child` has exited or was ended by a signal. */
export const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits up to `timeoutMs` for every process naming `needle` to end by itself (the services watch
 * the run that started them), then SIGKILLs whatever is left.
 */
export async function killLeftovers(needle: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (processesMentioning(needle).length > 0 && Date.now() < until) await sleep(200);
  for (const { pid } of processesMentioning(needle)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
}
