/**
 * The shapes of the platform's ids, as the contracts' rules declare them (the `pattern` and
 * `max_len` of every id field), for code that builds NATS subjects and KV keys from ids it did
 * not receive through a checked request (events, stored records).
 */

/**
 * Ids: 1 to 128 letters, digits, '-', '_' and '.', with a '.' only between other characters (so
 * every id is also a valid key of a KV bucket).
 */
export const ID_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
/** Ids that also become one NATS subject token (delivery and drone ids): no '.'. */
export const TOKEN_ID_PATTERN = /^[A-Za-z0-9_-]+$/;
export const MAX_ID_LENGTH = 128;
