/**
 * Request validation that names every bad field at once. Handlers collect violations with the
 * checks below and call `throwIfAny()`, which answers INVALID_ARGUMENT with a google.rpc.BadRequest
 * listing each field (paths use the proto field names, e.g. `pickup.latitude`).
 */
import type { DescEnum } from "@bufbuild/protobuf";
import { PackageSizeSchema } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { invalidArgument, type FieldViolation } from "../grpc/errors.js";

/**
 * Ids: 1 to 128 letters, digits, '-', '_' and '.', with a '.' only between other characters (so
 * every id is also a valid key of a KV bucket).
 */
export const ID_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
/** Ids that also become one NATS subject token (delivery and drone ids): no '.'. */
export const TOKEN_ID_PATTERN = /^[A-Za-z0-9_-]+$/;
export const MAX_ID_LENGTH = 128;
export const MAX_TEXT_LENGTH = 1024;

export interface PackageInfoLike {
  packageId: string;
  size: number;
  weightKg: number;
  tag: string;
}

export interface LocationLike {
  latitude: number;
  longitude: number;
  altitude: number;
}

export class Violations {
  readonly list: FieldViolation[] = [];

  add(field: string, description: string): this {
    this.list.push({ field, description });
    return this;
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** Throws INVALID_ARGUMENT with every violation collected, if any. */
  throwIfAny(message?: string): void {
    if (!this.empty) throw invalidArgument(this.list, message);
  }

  /** A required identifier. */
  id(field: string, value: string, options: { pattern?: RegExp; required?: boolean } = {}): this {
    const required = options.required ?? true;
    if (value === "") return required ? this.add(field, "is required") : this;
    if (value.length > MAX_ID_LENGTH) return this.add(field, `must be at most ${MAX_ID_LENGTH} characters`);
    const pattern = options.pattern ?? ID_PATTERN;
    if (!pattern.test(value)) {
      const allowed =
        pattern === TOKEN_ID_PATTERN ? "letters, digits, '-' and '_'" : "letters, digits, '-', '_' and '.' (a '.' only between other characters)";
      this.add(field, `must contain only ${allowed}`);
    }
    return this;
  }

  /** Free text with a length limit (optional unless `required`). */
  text(field: string, value: string, options: { max?: number; required?: boolean } = {}): this {
    const max = options.max ?? MAX_TEXT_LENGTH;
    if (options.required && value.trim() === "") return this.add(field, "is required");
    if (value.length > max) this.add(field, `must be at most ${max} characters`);
    return this;
  }

  /** A WGS 84 location; `required` (default true) makes a missing one a violation. */
  location(field: string, value: LocationLike | undefined, options: { required?: boolean } = {}): this {
    if (!value) return options.required === false ? this : this.add(field, "is required");
    if (!Number.isFinite(value.latitude) || value.latitude < -90 || value.latitude > 90) {
      this.add(`${field}.latitude`, "must be between -90 and 90");
    }
    if (!Number.isFinite(value.longitude) || value.longitude < -180 || value.longitude > 180) {
      this.add(`${field}.longitude`, "must be between -180 and 180");
    }
    if (!Number.isFinite(value.altitude) || value.altitude < 0 || value.altitude > 10_000) {
      this.add(`${field}.altitude`, "must be between 0 and 10000 metres");
    }
    return this;
  }

  /** A number within a range, `exclusiveMin` for "greater than". */
  number(field: string, value: number, range: { min?: number; exclusiveMin?: number; max?: number }): this {
    if (!Number.isFinite(value)) return this.add(field, "must be a finite number");
    if (range.exclusiveMin !== undefined && value <= range.exclusiveMin) {
      return this.add(field, `must be greater than ${range.exclusiveMin}`);
    }
    if (range.min !== undefined && value < range.min) return this.add(field, `must be at least ${range.min}`);
    if (range.max !== undefined && value > range.max) return this.add(field, `must be at most ${range.max}`);
    return this;
  }

  /** An enum value that the contract defines; UNSPECIFIED (0) is refused unless `allowUnspecified`. */
  enumValue(field: string, value: number, schema: DescEnum, options: { allowUnspecified?: boolean } = {}): this {
    if (value === 0 && !options.allowUnspecified) return this.add(field, "is required");
    if (!schema.values.some((v) => v.number === value)) {
      this.add(field, `unknown value ${value} of ${schema.typeName}`);
    }
    return this;
  }

  /**
   * A timestamp; `required` makes a missing one a violation, `future` refuses one at or before
   * `now`.
   */
  timestamp(
    field: string,
    value: Timestamp | undefined,
    options: { required?: boolean; future?: boolean; notFuture?: boolean; now?: Date } = {},
  ): this {
    if (!value) return options.required ? this.add(field, "is required") : this;
    if (value.nanos < 0 || value.nanos > 999_999_999 || value.seconds < -62135596800n || value.seconds > 253402300799n) {
      return this.add(field, "is not a valid timestamp");
    }
    const now = options.now ?? new Date();
    const at = timestampDate(value);
    if (options.future && at.getTime() <= now.getTime()) this.add(field, "must lie in the future");
    if (options.notFuture && at.getTime() > now.getTime() + 60_000) this.add(field, "must not lie in the future");
    return this;
  }

  /** The parcels of a delivery: `min`..`max` valid `PackageInfo`s with distinct ids. */
  packages(field: string, list: readonly PackageInfoLike[], { min = 1, max = 10 }: { min?: number; max?: number } = {}): this {
    if (list.length < min) return this.add(field, min === 1 ? "needs at least one package" : `needs at least ${min} packages`);
    if (list.length > max) return this.add(field, `must hold at most ${max} packages`);
    const seen = new Set<string>();
    list.forEach((p, i) => {
      const at = `${field}[${i}]`;
      this.id(`${at}.package_id`, p.packageId);
      if (p.packageId && seen.has(p.packageId)) this.add(`${at}.package_id`, `repeats package ${p.packageId}`);
      seen.add(p.packageId);
      this.enumValue(`${at}.size`, p.size, PackageSizeSchema);
      this.number(`${at}.weight_kg`, p.weightKg, { exclusiveMin: 0, max: 1000 });
      this.text(`${at}.tag`, p.tag, { max: 256 });
    });
    return this;
  }

  /** An idempotency key: 1 to 128 printable ASCII characters. */
  idempotencyKey(field: string, value: string, { required = true }: { required?: boolean } = {}): this {
    if (value === "") return required ? this.add(field, "is required") : this;
    if (value.length > 128) return this.add(field, "must be at most 128 characters");
    if (!/^[\x21-\x7e]+$/.test(value)) this.add(field, "must be printable ASCII without spaces");
    return this;
  }
}
