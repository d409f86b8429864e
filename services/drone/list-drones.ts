/** A page of the fleet in id order, optionally only drones of one status, as they are at `atMs`. */
import { DroneStatus, type Drone } from "../../gen/dronedelivery/drone/v1/drone_pb.js";
import { droneAt } from "./drone-record.js";
import { encodePageToken } from "./page-token.js";
import { compareIds, type DroneStore } from "./store.js";
import type { ListDronesQuery } from "./queries.js";

export interface DronePage {
  readonly drones: Drone[];
  readonly nextPageToken: string;
}

export async function listDrones(store: DroneStore, query: ListDronesQuery, atMs: number): Promise<DronePage> {
  const ids = (await store.droneIds()).filter((id) => compareIds(id, query.after) > 0);
  const matches = (d: Drone): boolean => query.status === DroneStatus.UNSPECIFIED || d.status === query.status;
  const drones: Drone[] = [];
  let more = false;
  // Read one more than a page at a time: finding one more match tells whether a next page exists.
  const chunk = query.pageSize + 1;
  for (let start = 0; start < ids.length && !more; start += chunk) {
    for (const { value: record } of await store.readDrones(ids.slice(start, start + chunk))) {
      const value = droneAt(record, atMs);
      if (!matches(value)) continue;
      if (drones.length === query.pageSize) {
        more = true;
        break;
      }
      drones.push(value);
    }
  }
  const last = drones.at(-1);
  return { drones, nextPageToken: more && last ? encodePageToken({ after: last.droneId, status: query.status }) : "" };
}
