/**
 * Reading the subject alternative names of a certificate as Node prints them
 * (`X509Certificate.subjectAltName`, `PeerCertificate.subjectaltname`): entries such as
 * `DNS:localhost, IP Address:127.0.0.1, URI:spiffe://dronedelivery.local/drone`, where a value
 * holding a comma or a quote is written as a JSON string.
 */

export interface SubjectAltName {
  /** "DNS", "IP Address", "URI", "email", ... */
  readonly type: string;
  readonly value: string;
}

const ENTRY = /([A-Za-z][A-Za-z ]*):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/y;

/** The entries of a subject alternative name string; an empty list for undefined or "". */
export function parseSubjectAltNames(text: string | undefined): SubjectAltName[] {
  const names: SubjectAltName[] = [];
  if (!text) return names;
  ENTRY.lastIndex = 0;
  while (ENTRY.lastIndex < text.length) {
    const match = ENTRY.exec(text);
    if (match === null) break;
    const [, type = "", raw = ""] = match;
    names.push({ type, value: raw.startsWith('"') ? unquote(raw) : raw });
  }
  return names;
}

/** The URI entries of a subject alternative name string. */
export function uriSubjectAltNames(text: string | undefined): string[] {
  return parseSubjectAltNames(text)
    .filter((name) => name.type === "URI")
    .map((name) => name.value);
}

/** The DNS entries of a subject alternative name string. */
export function dnsSubjectAltNames(text: string | undefined): string[] {
  return parseSubjectAltNames(text)
    .filter((name) => name.type === "DNS")
    .map((name) => name.value);
}

function unquote(raw: string): string {
  try {
    const value: unknown = JSON.parse(raw);
    return typeof value === "string" ? value : raw;
  } catch {
    return raw;
  }
}
