/**
 * The booking rules: what a new booking looks like (carrier, tracking number, ETAs), whether it
 * meets the sender's deadline, and what cancelling it changes. Pure functions of their inputs and
 * `now`; the handlers decide when to store them.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import {
  PickupSchema,
  PickupStatus,
  type ArrangePickupRequest,
  type Pickup,
} from "../../gen/dronedelivery/thirdparty/v1/thirdparty_service_pb.js";
import { failedPrecondition } from "../../lib/grpc/errors.js";
import { chooseCarrier, newTrackingId } from "./carriers.js";
import { scaledMs, type ThirdPartyConfig } from "./config.js";
import { greatCircleKm, travelMs } from "./route.js";

/** PreconditionFailure type of a delivery whose booking was cancelled. */
export const PICKUP_CANCELLED = "PICKUP_CANCELLED";
/** PreconditionFailure type of a delivery no carrier can hand over before its deadline. */
export const DEADLINE_UNREACHABLE = "DEADLINE_UNREACHABLE";

/**
 * When the carrier collects: at the start of the pickup window (or now, when the window is already
 * open); without a window, the configured lead time after now (under the time scale).
 */
export function pickupEtaMs(request: ArrangePickupRequest, config: ThirdPartyConfig, nowMs: number): number {
  const start = request.pickupWindow?.startTime;
  if (start) return Math.max(timestampMs(start), nowMs);
  return nowMs + scaledMs(config.pickupLeadMinutes, config);
}

/** When the carrier hands over: pickup, plus the drive at road speed, plus handling time (under the time scale). */
export function deliveryEtaMs(request: ArrangePickupRequest, config: ThirdPartyConfig, pickupMs: number): number {
  if (!request.pickup || !request.dropoff) throw new TypeError("deliveryEtaMs: pickup and dropoff are required");
  const drive = travelMs(greatCircleKm(request.pickup, request.dropoff), config.speedKmh) / config.timeScale;
  return Math.round(pickupMs + drive + scaledMs(config.handlingMinutes, config));
}

/** A new booking for a validated request, with a fresh tracking number. */
export function planPickup(request: ArrangePickupRequest, config: ThirdPartyConfig, now: Date): Pickup {
  const carrier = chooseCarrier(request.deliveryId, config.carriers);
  const pickupMs = pickupEtaMs(request, config, now.getTime());
  return create(PickupSchema, {
    deliveryId: request.deliveryId,
    ownerId: request.ownerId,
    carrier,
    trackingId: newTrackingId(carrier),
    status: PickupStatus.ARRANGED,
    pickupEta: timestampFromMs(pickupMs),
    deliveryEta: timestampFromMs(deliveryEtaMs(request, config, pickupMs)),
    arrangeTime: timestampFromMs(now.getTime()),
    pickup: request.pickup,
    dropoff: request.dropoff,
  });
}

/** FAILED_PRECONDITION when the planned hand-over lies after the sender's deadline. */
export function deadlineError(planned: Pickup, deadline: Timestamp | undefined): ConnectError | undefined {
  if (!deadline || !planned.deliveryEta) return undefined;
  if (timestampMs(planned.deliveryEta) <= timestampMs(deadline)) return undefined;
  const eta = timestampDate(planned.deliveryEta).toISOString();
  const latest = timestampDate(deadline).toISOString();
  return failedPrecondition(`no carrier can hand over delivery ${planned.deliveryId} by its deadline ${latest}`, [
    {
      type: DEADLINE_UNREACHABLE,
      subject: `delivery:${planned.deliveryId}`,
      description: `${planned.carrier} would hand over at ${eta}, after the deadline ${latest}`,
    },
  ]);
}

/** FAILED_PRECONDITION for arranging a delivery whose booking was cancelled. */
export function cancelledError(booking: Pickup): ConnectError {
  return failedPrecondition(`the pickup of delivery ${booking.deliveryId} was cancelled; it cannot be arranged again`, [
    {
      type: PICKUP_CANCELLED,
      subject: `delivery:${booking.deliveryId}`,
      description: `booking ${booking.trackingId} with ${booking.carrier} was cancelled`,
    },
  ]);
}

/** The booking after a cancel. */
export function cancelPickup(booking: Pickup, reason: string, now: Date): Pickup {
  return create(PickupSchema, {
    ...booking,
    status: PickupStatus.CANCELLED,
    cancelTime: timestampFromMs(now.getTime()),
    cancelReason: reason,
  });
}
