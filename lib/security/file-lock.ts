/**
 * A lock between processes on one machine, held as a file created exclusively (O_EXCL), and
 * atomic file writes (a temporary file renamed into place). The lock file names its holder's pid;
 * a lock whose holder has died is broken by the next process that wants it.
 */
import { randomBytes } from "node:crypto";
import { link, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";

export interface FileLockOptions {
  /** How long to wait for the lock before failing. Default 60 s. */
  readonly timeoutMs?: number;
  /** A lock file that names no holder (its writer died between creating and writing it) is broken after this long. Default 10 s. */
  readonly unnamedStaleMs?: number;
}

export class LockTimeoutError extends Error {
  override readonly name = "LockTimeoutError";
}

/** Runs `fn` while holding the lock file `lockPath`, waiting for any other holder first. */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const release = await acquire(lockPath, options);
  try {
    return await fn();
  } finally {
    await release();
  }
}

async function acquire(lockPath: string, options: FileLockOptions): Promise<() => Promise<void>> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const unnamedStaleMs = options.unnamedStaleMs ?? 10_000;
  const token = `${process.pid} ${randomBytes(8).toString("hex")}`;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(lockPath, token, { flag: "wx", mode: 0o600 });
      return async () => {
        const holder = await readFile(lockPath, "utf8").catch(() => undefined);
        if (holder === token) await unlink(lockPath).catch(() => undefined);
      };
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
    }
    const holder = await readFile(lockPath, "utf8").catch(() => undefined);
    if (holder !== undefined && (await isStale(lockPath, holder, unnamedStaleMs))) {
      await breakLock(lockPath, holder);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new LockTimeoutError(
        `waited ${timeoutMs} ms for the lock ${lockPath} (held by pid ${holderPid(holder ?? "") ?? "unknown"}); ` +
          "delete it if no process is using it",
      );
    }
    await sleep(Math.min(25 * 2 ** Math.min(attempt, 3), 200) * (0.5 + Math.random()));
  }
}

/** A lock is stale when its holder is dead, or when it names no holder and is old. */
async function isStale(lockPath: string, holder: string, unnamedStaleMs: number): Promise<boolean> {
  const pid = holderPid(holder);
  if (pid !== undefined) return !isAlive(pid);
  const info = await stat(lockPath).catch(() => undefined);
  return info !== undefined && Date.now() - info.mtimeMs > unnamedStaleMs;
}

/**
 * Moves a stale lock aside. Another process may have broken it and taken a fresh lock in the
 * meantime; if what was moved is not the stale lock, it is put back.
 */
async function breakLock(lockPath: string, staleHolder: string): Promise<void> {
  const aside = `${lockPath}.stale-${randomBytes(6).toString("hex")}`;
  try {
    await rename(lockPath, aside);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return;
    throw error;
  }
  const moved = await readFile(aside, "utf8").catch(() => undefined);
  if (moved !== staleHolder) await link(aside, lockPath).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

function holderPid(holder: string): number | undefined {
  const pid = Number(holder.split(" ")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === "EPERM";
  }
}

/** Writes `data` to `path` through a temporary file in the same folder, so readers never see part of it. */
export async function writeFileAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(temporary, data, { mode, flag: "wx" });
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
