/**
 * A private nats-server with JetStream for one test file.
 *
 *   const nats = await startNatsServer();
 *   afterAll(() => nats.stop());
 *
 * Each server listens on a port the OS picks on 127.0.0.1 and stores its data in a fresh temporary
 * directory, so any number of test files can run in parallel in separate vitest workers. stop()
 * shuts it down and removes the directory. Nothing is left behind if a test process exits without
 * stopping it: on a normal exit the server is killed and its directory removed at once; if the test
 * process is killed, a watchdog next to the server does the same (see
 * lib/devtools/supervised-child.ts).
 *
 * With `{ auth: true }` the server requires credentials: one user per identity with the
 * permissions of lib/nats/permissions.ts, passwords made in the temporary directory. Connect as
 * an identity with `connectAs("delivery")`, or give services `serviceEnv` (NATS_URL and
 * NATS_AUTH_DIR) so that natsCredentialsFromEnv finds their credentials:
 *
 *   const nats = await startNatsServer({ auth: true });
 *   const admin = await nats.connectAs("admin");
 *
 * Environment: NATS_SERVER_BIN chooses the binary (else PATH, /usr/sbin, /usr/bin).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NatsConnection } from "nats";
import { launchNatsServer, type RunningNatsServer } from "../../lib/devtools/nats-server.js";
import { ensureNatsAuth, type NatsAuth, type NatsCredentials } from "../../lib/nats/auth.js";
import { connectNatsAs, type ConnectNatsAsOptions } from "../../lib/nats/connection.js";
import { natsIdentitiesOf, type NatsIdentity } from "../../lib/nats/permissions.js";
import type { Registry } from "../../lib/service/registry.js";
import type { Env } from "../../lib/service/config.js";

export interface StartNatsServerOptions {
  /** Also serve HTTP monitoring on a free port (see monitorUrl). Default false. */
  monitoring?: boolean;
  /** How long to wait for the server to be ready. Default 20000 ms. */
  readyTimeoutMs?: number;
  /** How long stop() waits for a graceful shutdown before SIGKILL. Default 10000 ms. */
  stopTimeoutMs?: number;
  /** Extra nats-server arguments. */
  extraArgs?: readonly string[];
  /** Binary to run (default: NATS_SERVER_BIN, PATH, /usr/sbin, /usr/bin). */
  bin?: string;
  /** Require credentials: a user per identity with its permissions. Default false. */
  auth?: boolean;
  /** With auth: the registry whose processes are the users (lib/service/registry.ts); default the platform's. */
  registry?: Registry;
}

export interface TestNatsServer {
  /** Client URL, e.g. nats://127.0.0.1:38211. Stays the same across restart(). */
  readonly url: string;
  readonly port: number;
  /** JetStream store directory. Kept across restart(), removed by stop(). */
  readonly storeDir: string;
  /** Monitoring URL when started with `monitoring: true`. */
  readonly monitorUrl: string | undefined;
  /** Process id of the current nats-server (changes on restart). */
  readonly pid: number | undefined;
  /** Folder holding nats-users.json when started with `auth: true`, else undefined. */
  readonly authDir: string | undefined;
  /**
   * What a service needs to reach this server as itself: NATS_URL, and NATS_AUTH_DIR with auth
   * (NATS_AUTH=off without). Merge it into a service's environment.
   */
  readonly serviceEnv: Env;
  /** User and password of an identity with auth; undefined without. */
  credentials(identity: NatsIdentity): NatsCredentials | undefined;
  /** Connects to this server as an identity (its credentials and inbox prefix when auth is on). */
  connectAs(identity: NatsIdentity, options?: ConnectNatsAsOptions): Promise<NatsConnection>;
  /** The server's last log lines. */
  logTail(lines?: number): string;
  /** Stops the server and removes its temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same port with the same store directory. */
  restart(): Promise<void>;
}

/** Temporary directories of servers not yet stopped, removed when the process exits. */
const liveRoots = new Map<string, () => void>();
let exitHookInstalled = false;

/**
 * Registers a temporary directory and how to kill what runs in it, should the process exit before
 * it is stopped (the servers are killed, the directory removed). Returns the way to forget it.
 */
export function killOnExit(root: string, kill: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const [dir, killAll] of liveRoots) {
        killAll();
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // Best effort while exiting.
        }
      }
    });
  }
  liveRoots.set(root, kill);
  return () => liveRoots.delete(root);
}

export async function startNatsServer(options: StartNatsServerOptions = {}): Promise<TestNatsServer> {
  const root = mkdtempSync(path.join(tmpdir(), "dd-nats-"));
  const storeDir = path.join(root, "store");
  let current: RunningNatsServer | undefined;
  let stopped = false;
  const forgetRoot = killOnExit(root, () => current?.process.kill());

  let auth: NatsAuth | undefined;
  const launch = (port: number, httpPort: number | undefined) =>
    launchNatsServer({
      auth,
      storeDir,
      port,
      httpPort,
      bin: options.bin,
      extraArgs: options.extraArgs,
      readyTimeoutMs: options.readyTimeoutMs,
      orphanCleanupDir: root,
      onParentExit: "SIGKILL",
      keepParentAlive: false,
    });

  const removeRoot = async () => {
    forgetRoot();
    await rm(root, { recursive: true, force: true });
  };

  try {
    if (options.auth) {
      const dir = path.join(root, "auth");
      auth = options.registry ? await ensureNatsAuth(dir, natsIdentitiesOf(options.registry), options.registry) : await ensureNatsAuth(dir);
    }
    current = await launch(-1, options.monitoring ? -1 : undefined);
  } catch (err) {
    await removeRoot();
    throw err;
  }
  const port = current.port;
  const httpPort = current.httpPort;
  const url = current.url;
  const serviceEnv: Env = auth ? { NATS_URL: url, NATS_AUTH: "on", NATS_AUTH_DIR: auth.dir } : { NATS_URL: url, NATS_AUTH: "off" };

  return {
    url,
    port,
    storeDir,
    monitorUrl: current.monitorUrl,
    authDir: auth?.dir,
    serviceEnv,
    credentials: (identity) => auth?.credentialsOf(identity),
    connectAs: (identity, connectOptions = {}) => connectNatsAs(identity, serviceEnv, { url, ...connectOptions }),
    get pid() {
      return current?.serverPid;
    },
    logTail: (lines?: number) => current?.logTail(lines) ?? "",
    async stop() {
      if (stopped) return;
      stopped = true;
      const server = current;
      current = undefined;
      if (server) await server.stop({ timeoutMs: options.stopTimeoutMs });
      await removeRoot();
    },
    async restart() {
      if (stopped) throw new Error("restart() after stop(): this server is gone");
      const server = current;
      current = undefined;
      if (server) await server.stop({ timeoutMs: options.stopTimeoutMs });
      current = await launch(port, httpPort);
    },
  };
}
