/**
 * A separate process that runs `ensureDevPki` on the folder and identities given as arguments and
 * prints the result as one JSON line: the CA and every identity certificate, as PEM.
 *
 *   node --import tsx lib/security/test-support/ensure-pki-process.ts <dir> <identity>...
 */
import { ensureDevPki } from "../dev-pki.js";

const [dir, ...identities] = process.argv.slice(2);
if (dir === undefined) throw new Error("usage: ensure-pki-process.ts <dir> <identity>...");
const pki = await ensureDevPki(dir, identities);
const certs = Object.fromEntries([...pki.identities].map(([name, files]) => [name, files.certPem.toString()]));
process.stdout.write(`${JSON.stringify({ ca: pki.caPem.toString(), certs, changes: pki.changes.length })}\n`);
