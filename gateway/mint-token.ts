/**
 * Prints a bearer token for an account:
 *
 *   npx tsx gateway/mint-token.ts acct-demo [ttl-seconds]
 *   npx tsx gateway/mint-token.ts --role operator acct-ops [ttl-seconds]
 *
 * `--role <name>` (repeatable) adds a role to the token's `roles` claim; `operator` is the role
 * the fleet API (/v1/fleet/) requires.
 *
 * Signs with GATEWAY_JWT_SECRET, else with the development secret the gateway generated
 * (GATEWAY_DEV_SECRET_FILE, default .run/gateway-dev-secret; created when missing).
 */
import { readGatewayConfig } from "./config.js";
import { loadOrCreateDevSecret } from "./dev-secret.js";
import { isKnownRole, KNOWN_ROLES, mintToken } from "./tokens.js";

async function main(args: string[]): Promise<void> {
  const roles: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--role" || arg.startsWith("--role=")) {
      const role = arg === "--role" ? args[++i] : arg.slice("--role=".length);
      if (!role || !isKnownRole(role)) {
        process.stderr.write(`--role must be one of: ${KNOWN_ROLES.join(", ")}; got ${role ?? "nothing"}\n`);
        process.exit(2);
      }
      if (!roles.includes(role)) roles.push(role);
    } else {
      positional.push(arg);
    }
  }
  const [account, ttlArg] = positional;
  if (!account) {
    process.stderr.write("usage: mint-token [--role operator] <account-id> [ttl-seconds]\n");
    process.exit(2);
  }
  const ttl = ttlArg === undefined ? 3600 : Number(ttlArg);
  if (!Number.isInteger(ttl) || ttl <= 0) {
    process.stderr.write(`ttl-seconds must be a positive integer, got ${ttlArg}\n`);
    process.exit(2);
  }
  const config = readGatewayConfig(process.env);
  if (ttl > config.maxTokenLifetimeS) {
    process.stderr.write(`ttl-seconds must be at most ${config.maxTokenLifetimeS} (GATEWAY_MAX_TOKEN_LIFETIME_S), got ${ttl}\n`);
    process.exit(2);
  }
  const secret = config.jwtSecret ?? loadOrCreateDevSecret(config.devSecretFile);
  process.stdout.write(`${await mintToken(account, secret, ttl, roles)}\n`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
});
