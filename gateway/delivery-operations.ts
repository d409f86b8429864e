/**
 * What every public API version does with the internal services, in the internal contract's
 * terms: the caller's account, ownership checks, idempotency keys, deadlines, the internal calls
 * and the re-raising of their errors. Each version's handlers (v1/handlers.ts, v2/handlers.ts)
 * only map their own messages onto these and back.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { ConfirmationType } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import type { Delivery, DeliveryStatus } from "../gen/dronedelivery/delivery/v1/delivery_pb.js";
import type { DeliveryStatusEvent } from "../gen/dronedelivery/delivery/v1/delivery_events_pb.js";
import type { WatchDeliveryResponse } from "../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import type { LocationSchema } from "../gen/dronedelivery/common/v1/location_pb.js";
import type { PackageInfoSchema } from "../gen/dronedelivery/common/v1/package_info_pb.js";
import type { RescheduleDeliveryRequestSchema } from "../gen/dronedelivery/ingestion/v1/ingestion_service_pb.js";
import { accountOf } from "./auth.js";
import { streamCallOptions, unaryCallOptions } from "./call-options.js";
import { relay, type FieldPathMapper } from "./errors.js";
import type { HandlerDeps } from "./handler-deps.js";
import { fingerprintOf, resolveIdempotencyKey, uncheckedIdempotency, type Claim } from "./idempotency.js";
import { locationToInternal, reschedulePaths, type LocationFields } from "./shared-mapping.js";
import { getOwnDelivery, requireOwnDelivery } from "./ownership.js";
import { refuseImpossibleReschedule } from "./reschedule-check.js";

/** A new delivery, in the internal contract's terms, without the owner (always the caller). */
export interface ScheduleFields {
  /** The request's own key field; the `Idempotency-Key` header takes its place. */
  readonly idempotencyKey: string;
  readonly pickup: MessageInitShape<typeof LocationSchema> | undefined;
  readonly dropoff: MessageInitShape<typeof LocationSchema> | undefined;
  readonly pickupTime: Timestamp | undefined;
  readonly deadline: Timestamp | undefined;
  readonly expedited: boolean;
  /** UNSPECIFIED means none is required. */
  readonly confirmationRequired: ConfirmationType;
  readonly packages: MessageInitShape<typeof PackageInfoSchema>[];
}

/** A public reschedule, in either version. */
export interface PublicReschedule {
  readonly deliveryId: string;
  readonly dropoff?: LocationFields | undefined;
  readonly pickupTime?: Timestamp | undefined;
  readonly deadline?: Timestamp | undefined;
  readonly updateMask?: { readonly paths: readonly string[] } | undefined;
}

/** A confirmation of receipt, with the internal confirmation type. */
export interface ConfirmFields {
  readonly deliveryId: string;
  readonly confirmationType: ConfirmationType;
  readonly confirmTime?: Timestamp | undefined;
  readonly proofReference: string;
}

/** The answer to a command: accepted now, carried out later. */
export interface Accepted {
  readonly deliveryId: string;
  readonly acceptTime?: Timestamp | undefined;
}

/** The Ingestion command of a public reschedule: only the fields it changes, with the mask. */
export function rescheduleCommand(
  request: PublicReschedule,
  ownerId: string,
): MessageInitShape<typeof RescheduleDeliveryRequestSchema> {
  const paths = reschedulePaths(request);
  return {
    deliveryId: request.deliveryId,
    ownerId,
    dropoff: paths.includes("dropoff") ? locationToInternal(request.dropoff) : undefined,
    pickupTime: paths.includes("pickup_time") ? request.pickupTime : undefined,
    deadline: paths.includes("deadline") ? request.deadline : undefined,
    updateMask: { paths },
  };
}

/** Codes after which the request may have been carried out: its key stays bound. */
const OUTCOME_UNKNOWN: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Canceled,
  Code.Unknown,
  Code.Internal,
  Code.DataLoss,
]);

export function deliveryOperations({ clients, callTimeoutMs, idempotency = uncheckedIdempotency }: HandlerDeps) {
  const { ingestion, delivery } = clients;
  const options = (ctx: HandlerContext) => unaryCallOptions(ctx, callTimeoutMs);

  /** The account of the call, after checking it owns `deliveryId`. */
  const owner = async (deliveryId: string, ctx: HandlerContext): Promise<string> => {
    const account = accountOf(ctx);
    await requireOwnDelivery(delivery, deliveryId, account, options(ctx));
    return account;
  };

  return {
    owner,

    /**
     * Schedules a delivery for the caller; `mapPath` renames field paths of a refusal. A key the
     * caller chose is claimed for this request's fingerprint first (idempotency.ts): reused with
     * a different request it is refused; refused by Ingestion, it is given back.
     */
    async schedule(fields: ScheduleFields, ctx: HandlerContext, mapPath: FieldPathMapper): Promise<Accepted> {
      const { key, chosen } = resolveIdempotencyKey(fields.idempotencyKey, ctx.requestHeader);
      const internal = {
        ...fields,
        ownerId: accountOf(ctx),
        idempotencyKey: key,
        // The public contract: an unset confirmation type means none is required.
        confirmationRequired:
          fields.confirmationRequired === ConfirmationType.UNSPECIFIED ? ConfirmationType.NONE : fields.confirmationRequired,
      };
      const claim: Claim | undefined = chosen ? await idempotency.claim(internal.ownerId, key, fingerprintOf(internal)) : undefined;
      try {
        const answer = await relay(() => ingestion.scheduleDelivery(internal, options(ctx)), mapPath);
        return { deliveryId: answer.deliveryId, acceptTime: answer.acceptTime };
      } catch (error) {
        if (claim && error instanceof ConnectError && !OUTCOME_UNKNOWN.has(error.code)) await claim.release();
        throw error;
      }
    },

    async reschedule(request: PublicReschedule, ctx: HandlerContext): Promise<Accepted> {
      const account = accountOf(ctx);
      const current = await getOwnDelivery(delivery, request.deliveryId, account, options(ctx));
      if (current) refuseImpossibleReschedule(current, reschedulePaths(request));
      const answer = await relay(() => ingestion.rescheduleDelivery(rescheduleCommand(request, account), options(ctx)));
      return { deliveryId: answer.deliveryId, acceptTime: answer.acceptTime };
    },

    async cancel(request: { deliveryId: string; reason: string }, ctx: HandlerContext): Promise<Accepted> {
      const account = await owner(request.deliveryId, ctx);
      const answer = await relay(() =>
        ingestion.cancelDelivery({ deliveryId: request.deliveryId, ownerId: account, reason: request.reason }, options(ctx)),
      );
      return { deliveryId: answer.deliveryId, acceptTime: answer.acceptTime };
    },

    /** One of the caller's deliveries, read in one call (the owner is checked from it). */
    get(deliveryId: string, ctx: HandlerContext): Promise<Delivery | undefined> {
      return getOwnDelivery(delivery, deliveryId, accountOf(ctx), options(ctx));
    },

    async list(page: { pageSize: number; pageToken: string }, ctx: HandlerContext) {
      const request = { ownerId: accountOf(ctx), pageSize: page.pageSize, pageToken: page.pageToken };
      return relay(() => delivery.listDeliveries(request, options(ctx)));
    },

    async status(deliveryId: string, ctx: HandlerContext): Promise<DeliveryStatus | undefined> {
      await owner(deliveryId, ctx);
      return (await relay(() => delivery.getDeliveryStatus({ deliveryId }, options(ctx)))).status;
    },

    async confirm(request: ConfirmFields, ctx: HandlerContext): Promise<Delivery | undefined> {
      await owner(request.deliveryId, ctx);
      const internal = {
        deliveryId: request.deliveryId,
        confirmationType: request.confirmationType,
        confirmTime: request.confirmTime,
        proofReference: request.proofReference,
      };
      return (await relay(() => delivery.confirmDelivery(internal, options(ctx)))).delivery;
    },

    async history(deliveryId: string, ctx: HandlerContext): Promise<DeliveryStatusEvent[]> {
      await owner(deliveryId, ctx);
      return (await relay(() => delivery.getDeliveryHistory({ deliveryId }, options(ctx)))).events;
    },

    /**
     * The internal watch stream as a public one: an unknown or foreign delivery answers NOT_FOUND
     * at once (a delivery is readable, at stage REQUESTED, from the moment it is accepted), then
     * it maps each update (empty ones skipped), re-raises internal failures as
     * public errors, and cancels the internal call when the caller stops.
     */
    async *watch<T>(
      request: { deliveryId: string; afterSequence: bigint; includePositions: boolean },
      ctx: HandlerContext,
      toPublic: (update: WatchDeliveryResponse) => T | undefined,
    ): AsyncGenerator<T> {
      await owner(request.deliveryId, ctx);
      const updates = delivery.watchDelivery(
        { deliveryId: request.deliveryId, afterSequence: request.afterSequence, includePositions: request.includePositions },
        streamCallOptions(ctx),
      );
      const iterator = updates[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await relay(() => iterator.next());
          if (next.done) return;
          const update = toPublic(next.value);
          if (update !== undefined) yield update;
        }
      } finally {
        await iterator.return?.();
      }
    },
  };
}
