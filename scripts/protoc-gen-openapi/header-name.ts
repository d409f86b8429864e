/**
 * Header names as documents show them: `idempotency-key` -> `Idempotency-Key`.
 */
export function headerName(name: string): string {
  return name
    .split("-")
    .map((word) => (word === "" ? word : word[0]?.toUpperCase() + word.slice(1).toLowerCase()))
    .join("-");
}
