/**
 * What a ListDrones request asks for, once the binding has checked it against the field rules of
 * the contract: the default page size, and where a page token (this service's own) continues.
 */
import type { ListDronesRequest } from "../../gen/dronedelivery/drone/v1/drone_scheduler_service_pb.js";
import { invalidArgument } from "../../lib/grpc/errors.js";
import { decodePageToken } from "./page-token.js";

export const DEFAULT_PAGE_SIZE = 100;

export interface ListDronesQuery {
  readonly pageSize: number;
  /** List drones with ids after this one; empty for the first page. */
  readonly after: string;
  readonly status: number;
}

export function listDronesQuery(request: ListDronesRequest): ListDronesQuery {
  let after = "";
  if (request.pageToken !== "") {
    const decoded = decodePageToken(request.pageToken, request.status);
    if (!decoded.ok) throw invalidArgument([{ field: "page_token", description: decoded.reason }]);
    after = decoded.cursor.after;
  }
  return { pageSize: request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize, after, status: request.status };
}
