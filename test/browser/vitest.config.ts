// The browser tier (make test-browser): the whole platform as `make run` starts it and Debian's
// Chromium driving the web console. Its own suite: the main one (vitest.config.ts) never picks
// these files up (they are named *.browser.ts, not *.test.ts).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../.."),
  test: {
    include: ["test/browser/**/*.browser.ts"],
    // One platform per file, its tests in order; a flight takes seconds, the start up to a few minutes.
    fileParallelism: false,
    sequence: { concurrent: false },
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
  },
});
