/**
 * Which carrier takes a delivery, and the tracking number it issues.
 *
 * Choice rule: the 32-bit FNV-1a hash of the delivery id, modulo the number of configured
 * carriers, indexes the configured list. The choice depends on the delivery id and the list only,
 * so every instance of the service, and every retry, picks the same carrier for a delivery.
 */
import { randomInt } from "node:crypto";

/** 32-bit FNV-1a over the UTF-8 bytes of `text`, as an unsigned integer. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The carrier for a delivery: `carriers[fnv1a32(deliveryId) % carriers.length]`. */
export function chooseCarrier(deliveryId: string, carriers: readonly string[]): string {
  const carrier = carriers[fnv1a32(deliveryId) % carriers.length];
  if (carrier === undefined) throw new RangeError("no carrier configured");
  return carrier;
}

/**
 * A carrier's short code, the prefix of its tracking numbers: the initials of its words ("Contoso
 * Freight" -> "CF", at most 4), or the first three characters of a one-word name ("Zipline" -> "ZIP").
 */
export function carrierCode(carrier: string): string {
  const words = carrier.toUpperCase().match(/[A-Z0-9]+/g) ?? [];
  const first = words[0];
  if (first === undefined) return "TP";
  if (words.length === 1) return first.slice(0, 3);
  return words
    .slice(0, 4)
    .map((w) => w[0])
    .join("");
}

/** Crockford's base-32 alphabet: no I, L, O or U, so numbers read aloud are unambiguous. */
const TRACKING_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TRACKING_RANDOM_CHARS = 12;

/**
 * A new tracking number: the carrier code, '-', and 12 random base-32 characters (60 random bits),
 * for example "CF-7K3M9Q2X4T8B".
 */
export function newTrackingId(carrier: string): string {
  let random = "";
  for (let i = 0; i < TRACKING_RANDOM_CHARS; i++) random += TRACKING_ALPHABET[randomInt(TRACKING_ALPHABET.length)];
  return `${carrierCode(carrier)}-${random}`;
}
