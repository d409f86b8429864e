/**
 * Loopback ports for the processes a test or benchmark starts.
 *
 * A port is picked at random below Linux's ephemeral range (32768-60999) and above the ports people
 * give `make run` (the defaults and those shifted by 10000), and checked free. The OS's own pick
 * (listening on port 0) comes from the ephemeral range, where any outgoing connection of the many a
 * parallel suite makes may take the port between the check and the moment the process binds it.
 * 30000 and up is left to the tests that take a fixed block there (test/scale-out.test.ts).
 */
import { createServer } from "node:net";

const LOWEST = 20_000;
const HIGHEST = 29_999;
/** Ports this process handed out already: two callers never get the same one. */
const handedOut = new Set<number>();

/** A loopback port free right now, not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST + 1));
    if (handedOut.has(port) || !(await isFree(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free loopback port between ${LOWEST} and ${HIGHEST}`);
}

/** True when `port` can be listened on at 127.0.0.1 now (a block of fixed ports a test picks). */
export function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
