/**
 * Child processes for local runs and tests (`make run`, the test harness) that never outlive their
 * parent.
 *
 * Each child runs under a small POSIX `sh` wrapper (supervise.sh, next to this file) that is the
 * leader of its own process group:
 *  - SIGTERM sent to the wrapper is forwarded to the child (and so is SIGINT, for programs that
 *    install a handler for it, such as nats-server: a shell starts background commands with SIGINT
 *    ignored), and the wrapper waits for the child, so the wrapper's exit is the child's exit;
 *  - a watchdog inside the wrapper reads a pipe whose other end only this process holds. When this
 *    process dies, however it dies (even SIGKILL), the pipe closes and the watchdog stops the child
 *    (SIGTERM, then SIGKILL after a grace period) and removes `orphanCleanupDir` if one was given;
 *  - being in its own process group, the child does not receive the terminal's Ctrl-C directly, so
 *    the supervisor decides the order in which things stop.
 *
 * Not used by the services themselves; POSIX only.
 */
import { spawn } from "node:child_process";
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import { constants as osConstants } from "node:os";
import { fileURLToPath } from "node:url";

/** How a supervised child ended. */
export interface ChildExit {
  /** Exit status, or null when it was killed by a signal. */
  code: number | null;
  /** The signal that ended it, if any. */
  signal: NodeJS.Signals | null;
  /** True when it ended because stop() or kill() asked it to. */
  requested: boolean;
}

export interface SupervisedChildOptions {
  /** Short name used in messages. */
  name: string;
  command: string;
  args?: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called for every line the child writes to stdout or stderr (without the newline). */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Append everything the child writes to this file too. */
  logFile?: string;
  /** How many output lines logTail() keeps. Default 200. */
  tailLines?: number;
  /** Removed by the watchdog after the child stopped, when this process died without stopping it. */
  orphanCleanupDir?: string;
  /** How long the watchdog waits after SIGTERM before SIGKILL, in ms. Default 10000. */
  orphanStopTimeoutMs?: number;
  /**
   * What happens to a still-running child when this process exits normally ('exit' event):
   * "SIGTERM" lets it shut down gracefully on its own (the watchdog bounds that), "SIGKILL"
   * kills it at once. Default "SIGTERM".
   */
  onParentExit?: "SIGTERM" | "SIGKILL";
  /** When false, the child does not keep this process's event loop alive. Default true. */
  keepParentAlive?: boolean;
}

export interface SupervisedChild {
  readonly name: string;
  /** Process id of the wrapper, which is also the child's process group id. */
  readonly pid: number;
  /** Resolves once the child (and its wrapper) have exited. Never rejects. */
  readonly exited: Promise<ChildExit>;
  hasExited(): boolean;
  /** The last lines the child wrote (stdout and stderr interleaved). */
  logTail(lines?: number): string;
  /**
   * Asks the child to stop (SIGTERM by default), waits up to `timeoutMs` (default 10000), then
   * kills its whole process group. Idempotent; resolves with how it ended.
   */
  stop(options?: { timeoutMs?: number; signal?: NodeJS.Signals }): Promise<ChildExit>;
  /** Kills the child's whole process group at once (synchronous; safe in an 'exit' handler). */
  kill(): void;
}

/** The wrapper script; see its header. */
const SUPERVISE_SCRIPT = fileURLToPath(new URL("./supervise.sh", import.meta.url));

const live = new Set<SupervisedChildImpl>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.onParentExit();
  });
}

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([name, num]) => [num, name as NodeJS.Signals]),
);

class SupervisedChildImpl implements SupervisedChild {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<ChildExit>;
  private done = false;
  private requested = false;
  private readonly tail: string[] = [];
  private readonly tailLimit: number;
  private readonly parentExitSignal: "SIGTERM" | "SIGKILL";
  private log: WriteStream | undefined;

  constructor(private readonly options: SupervisedChildOptions) {
    this.name = options.name;
    this.tailLimit = options.tailLines ?? 200;
    this.parentExitSignal = options.onParentExit ?? "SIGTERM";
    const graceTenths = Math.max(1, Math.ceil((options.orphanStopTimeoutMs ?? 10_000) / 100));
    const wrapperArgs = [options.name, options.orphanCleanupDir ?? "", String(graceTenths)];
    const child = spawn("sh", [SUPERVISE_SCRIPT, ...wrapperArgs, options.command, ...(options.args ?? [])], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      // Own process group: no terminal Ctrl-C, and the whole group can be killed at once.
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.on("error", (err) => {
      this.pushLine(`[${options.name}] ${err.message}`);
    });
    if (child.pid === undefined) {
      throw new Error(`could not start ${options.name}: failed to spawn sh`);
    }
    this.pid = child.pid;
    if (options.logFile) {
      this.log = createWriteStream(options.logFile, { flags: "a" });
      this.log.on("error", () => {
        this.log = undefined;
      });
    }
    this.readLines(child.stdout, "stdout");
    this.readLines(child.stderr, "stderr");
    // The parent's end of the watchdog pipe: never written to, only held open.
    child.stdin.on("error", () => {});

    this.exited = new Promise<ChildExit>((resolve) => {
      let result: ChildExit | undefined;
      const finish = () => {
        if (!result) return;
        const r = result;
        result = undefined;
        child.stdin.destroy();
        if (this.log) this.log.end(() => resolve(r));
        else resolve(r);
      };
      child.on("exit", (code, signal) => {
        this.done = true;
        live.delete(this);
        // Sweep anything left in the child's process group (normally nothing), so that no
        // grandchild survives and the output pipes close.
        try {
          process.kill(-this.pid, "SIGKILL");
        } catch {
          // ESRCH: the group is already empty.
        }
        let exitSignal = signal;
        let exitCode = code;
        // The wrapper reports a child killed by signal N as status 128 + N.
        if (code !== null && code > 128 && signalNames.has(code - 128)) {
          exitSignal = signalNames.get(code - 128) ?? null;
          exitCode = null;
        }
        result = { code: exitCode, signal: exitSignal, requested: this.requested };
        // Output still buffered in the pipes arrives before 'close'; do not wait forever for it.
        setTimeout(finish, 2_000).unref();
      });
      child.on("close", () => finish());
    });

    if (options.keepParentAlive === false) {
      child.unref();
      for (const stream of [child.stdin, child.stdout, child.stderr]) {
        (stream as unknown as { unref?: () => void }).unref?.();
      }
    }
    live.add(this);
    installExitHook();
  }

  hasExited(): boolean {
    return this.done;
  }

  logTail(lines = 40): string {
    return this.tail.slice(-lines).join("\n");
  }

  async stop(options: { timeoutMs?: number; signal?: NodeJS.Signals } = {}): Promise<ChildExit> {
    if (this.done) return this.exited;
    this.requested = true;
    this.signal(options.signal ?? "SIGTERM", false);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), options.timeoutMs ?? 10_000);
    });
    const outcome = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      this.pushLine(`[${this.name}] did not stop in time; killing it`);
      this.kill();
    }
    return this.exited;
  }

  kill(): void {
    if (this.done) return;
    this.requested = true;
    this.signal("SIGKILL", true);
  }

  /** Called from the process 'exit' handler: must be synchronous. */
  onParentExit(): void {
    if (this.done) return;
    if (this.parentExitSignal === "SIGKILL") this.signal("SIGKILL", true);
    else this.signal("SIGTERM", false);
  }

  private signal(signal: NodeJS.Signals, wholeGroup: boolean): void {
    try {
      process.kill(wholeGroup ? -this.pid : this.pid, signal);
    } catch {
      // Already gone.
    }
  }

  private readLines(stream: NodeJS.ReadableStream, name: "stdout" | "stderr"): void {
    let pending = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      this.log?.write(chunk);
      pending += chunk;
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        const line = pending.slice(0, newline).replace(/\r$/, "");
        pending = pending.slice(newline + 1);
        this.pushLine(line);
        this.options.onLine?.(line, name);
        newline = pending.indexOf("\n");
      }
    });
    stream.on("end", () => {
      if (pending) {
        this.pushLine(pending);
        this.options.onLine?.(pending, name);
        pending = "";
      }
    });
  }

  private pushLine(line: string): void {
    this.tail.push(line);
    if (this.tail.length > this.tailLimit) this.tail.splice(0, this.tail.length - this.tailLimit);
  }
}

/**
 * The process id of the command a supervised child runs (not of its wrapper), read from /proc
 * (Linux): the wrapper's child whose command line is not the wrapper's own (its other child is the
 * watchdog, a copy of the wrapper). Undefined when it cannot be told (yet, or any more).
 */
export function commandPidOf(child: Pick<SupervisedChild, "pid" | "hasExited">): number | undefined {
  if (child.hasExited()) return undefined;
  try {
    const own = readFileSync(`/proc/${child.pid}/cmdline`, "utf8");
    const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    for (const pid of children) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, "utf8") !== own) return Number(pid);
      } catch {
        // Gone meanwhile.
      }
    }
  } catch {
    // Not Linux, or the wrapper is gone.
  }
  return undefined;
}

/** Starts `command` under the supervising wrapper described above. */
export function startSupervisedChild(options: SupervisedChildOptions): SupervisedChild {
  return new SupervisedChildImpl(options);
}
