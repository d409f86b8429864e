// Round trips through a real grpc-js server on loopback, using the platform's generated services and
// a test-only service for client streaming and bidi.

import { create, createFileRegistry, toBinary } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import {
  FileDescriptorProtoSchema,
  Int32ValueSchema,
  StringValueSchema,
  file_google_protobuf_wrappers,
  timestampDate,
  timestampFromDate,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountStatus, type Account } from "../../gen/dronedelivery/account/v1/account_pb.js";
import {
  AccountService,
  GetAccountRequestSchema,
} from "../../gen/dronedelivery/account/v1/account_service_pb.js";
import { ConfirmationType, PackageSize } from "../../gen/dronedelivery/common/v1/package_info_pb.js";
import { DeliveryStage } from "../../gen/dronedelivery/delivery/v1/delivery_pb.js";
import { DeliveryService, type WatchDeliveryResponse } from "../../gen/dronedelivery/delivery/v1/delivery_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  addService,
  createClient,
  fieldViolations,
  invalidArgument,
  methodPath,
  notFound,
  retryDelayMs,
  unavailable,
  type Client,
  type HandlerContext,
  type ServiceImpl,
} from "./index.js";
import { rpcError } from "../../test/harness/rpc.js";

// ---------------------------------------------------------------------------------------------
// A test-only service with client-streaming and bidi methods over the wrapper types.

const streamServiceFile = create(FileDescriptorProtoSchema, {
  name: "test/stream/v1/stream_service.proto",
  package: "test.stream.v1",
  dependency: ["google/protobuf/wrappers.proto"],
  syntax: "proto3",
  service: [
    {
      name: "StreamService",
      method: [
        {
          name: "Sum",
          inputType: ".google.protobuf.Int32Value",
          outputType: ".google.protobuf.Int32Value",
          clientStreaming: true,
        },
        {
          name: "Shout",
          inputType: ".google.protobuf.StringValue",
          outputType: ".google.protobuf.StringValue",
          clientStreaming: true,
          serverStreaming: true,
        },
      ],
    },
  ],
});

const StreamService = createFileRegistry(streamServiceFile, (name) =>
  name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined,
).getService("test.stream.v1.StreamService") as GenService<{
  sum: { methodKind: "client_streaming"; input: typeof Int32ValueSchema; output: typeof Int32ValueSchema };
  shout: { methodKind: "bidi_streaming"; input: typeof StringValueSchema; output: typeof StringValueSchema };
}>;

// ---------------------------------------------------------------------------------------------
// Handlers. The request's id selects the behaviour under test.

const created = timestampFromDate(new Date("2024-05-01T10:00:00.123Z"));

function account(accountId: string): Account {
  return {
    $typeName: "dronedelivery.account.v1.Account",
    accountId,
    userId: "user-7",
    displayName: "Ada",
    status: AccountStatus.ACTIVE,
    statusReason: "",
    createTime: created,
    updateTime: timestampFromDate(new Date("2024-06-02T08:30:00Z")),
  };
}

/** Promise that a test awaits until a handler reports something. */
function signalOf<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
    }
    signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
  });
}

let lastContext: HandlerContext | undefined;
let abortedHandler = signalOf<unknown>();
const reportedErrors: unknown[] = [];

const accountImpl: ServiceImpl<typeof AccountService> = {
  async getAccount(request, ctx) {
    lastContext = ctx;
    switch (request.accountId) {
      case "wait-for-abort":
        ctx.signal.addEventListener("abort", () => abortedHandler.resolve(ctx.signal.reason), { once: true });
        return untilAborted(ctx.signal);
      case "missing":
        ctx.responseTrailer.set("x-trace-id", "trace-42");
        throw notFound("account missing", create(ErrorInfoSchema, { reason: "ACCOUNT_NOT_FOUND", domain: "account" }));
      case "busy":
        throw unavailable("account store is busy", 1500);
      case "thrown-metadata":
        throw new ConnectError("account thrown-metadata is archived", Code.FailedPrecondition, {
          "x-archived-by": "ops",
          "x-marker-bin": encodeBinaryHeader(new Uint8Array([1, 2, 3])),
        });
      case "relayed":
        // A failure received from another call, thrown on as it is.
        return accounts.getAccount({ accountId: "missing" });
      case "boom":
        throw new Error("database exploded");
      case "boom-sync-string":
        throw "not an error";
      case "wrong-message":
        return create(GetAccountRequestSchema, { accountId: "a-1" }) as never;
      case "undefined":
        return undefined as never;
      case "null":
        return null as never;
      case "string-for-message":
        return { account: "a-1" } as never;
      case "date-for-timestamp":
        return { account: { accountId: "a-1", createTime: new Date() } } as never;
      case "nested-wrong-message":
        return { account: create(GetAccountRequestSchema, { accountId: "a-1" }) } as never;
      default:
        ctx.responseHeader.set("x-served-by", "account-test");
        return { account: account(request.accountId) };
    }
  },
  checkAccountStatus(request) {
    switch (request.accountId) {
      case "string-for-enum":
        return { accountId: request.accountId, status: "ACTIVE", canOrder: true } as never;
      case "string-for-bool":
        return { accountId: request.accountId, canOrder: "yes" } as never;
      default:
        // A plain init object answered synchronously.
        return { accountId: request.accountId, status: AccountStatus.SUSPENDED, canOrder: false, reason: "unpaid" };
    }
  },
  createAccount(request) {
    // Violations the handler finds itself (the contract's rules were checked before it ran).
    const violations = [];
    if (request.account?.userId === "nobody") {
      violations.push({ field: "account.user_id", description: "names no user" });
    }
    if (request.account?.status === AccountStatus.SUSPENDED) {
      violations.push({ field: "account.status", description: "cannot be suspended at creation" });
    }
    if (violations.length > 0) {
      throw invalidArgument(violations);
    }
    return Promise.resolve({ account: request.account });
  },
};

let streamCancelled = signalOf<unknown>();
let streamFinally = signalOf<void>();

// Only some methods are implemented: the others must answer UNIMPLEMENTED.
const deliveryImpl = {
  getDelivery(request: { deliveryId: string }) {
    return {
      delivery: {
        deliveryId: request.deliveryId,
        ownerId: "acc-1",
        pickup: { latitude: 47.6062, longitude: -122.3321, altitude: 12.5 },
        dropoff: { latitude: 47.61, longitude: -122.2, altitude: 0 },
        pickupTime: created,
        expedited: true,
        confirmationRequired: ConfirmationType.SIGNATURE,
        packages: [
          { packageId: "p-1", size: PackageSize.SMALL, weightKg: 1.25, tag: "fragile" },
          { packageId: "p-2", size: PackageSize.LARGE, weightKg: 9.5, tag: "" },
        ],
        carrier: { case: "thirdParty" as const, value: { carrier: "ups", trackingId: "1Z999" } },
        stage: DeliveryStage.HEADED_TO_PICKUP,
        history: [
          { stage: DeliveryStage.CREATED, changeTime: created, reason: "" },
          { stage: DeliveryStage.HEADED_TO_PICKUP, changeTime: created, reason: "drone assigned" },
        ],
      },
    };
  },
  async *watchDelivery(request, ctx) {
    const event = (sequence: number, stage: DeliveryStage) =>
      ({
        sequence: BigInt(sequence),
        update: {
          case: "statusEvent",
          value: { deliveryId: request.deliveryId, stage, eventTime: created, location: { latitude: 1, longitude: 2 } },
        },
      }) as const;
    switch (request.deliveryId) {
      case "endless":
        try {
          yield event(1, DeliveryStage.CREATED);
          ctx.signal.addEventListener("abort", () => streamCancelled.resolve(ctx.signal.reason), { once: true });
          await untilAborted(ctx.signal);
        } finally {
          streamFinally.resolve();
        }
        return;
      case "bad-item":
        yield event(1, DeliveryStage.CREATED);
        yield { sequence: 2n, update: { case: "statusEvent", value: "not an event" } } as never;
        return;
      case "bad-oneof":
        yield { sequence: 1n, update: { case: "teleport", value: {} } } as never;
        return;
      case "many":
        for (let i = 1; i <= 3_000; i++) {
          yield { sequence: BigInt(i) };
        }
        return;
      case "throws":
        yield event(1, DeliveryStage.CREATED);
        throw invalidArgument([{ field: "after_sequence", description: "too far ahead" }]);
      default:
        yield event(1, DeliveryStage.CREATED);
        yield { sequence: 2n, update: { case: "position", value: { location: { latitude: 3, longitude: 4, altitude: 50 } } } };
        yield event(3, DeliveryStage.HEADED_TO_PICKUP);
        yield event(Number(request.afterSequence) + 4, DeliveryStage.HEADED_TO_DROPOFF);
    }
  },
} satisfies Partial<ServiceImpl<typeof DeliveryService>>;

const SLOW_COMMIT = 1_000;
let sumCancelled = signalOf<unknown>();

const streamImpl: ServiceImpl<typeof StreamService> = {
  async sum(requests, ctx) {
    let total = 0;
    let slowCommit = false;
    try {
      for await (const request of requests) {
        if (request.value < 0) {
          throw invalidArgument([{ field: "value", description: "must not be negative" }]);
        }
        slowCommit ||= request.value === SLOW_COMMIT;
        total += request.value;
      }
    } catch (err) {
      if (!slowCommit) {
        throw err;
      }
    }
    if (slowCommit) {
      // Stands for work that takes a while after the upload; it must learn of the cancellation.
      await Promise.race([untilAborted(ctx.signal), new Promise((resolve) => setTimeout(resolve, 2_000))]).catch(
        () => undefined,
      );
      sumCancelled.resolve(ctx.signal.reason);
    }
    return { value: total };
  },
  async *shout(requests) {
    for await (const request of requests) {
      if (request.value === "bad") {
        yield { value: 42 } as never;
      }
      if (request.value === "stop") {
        break; // stop reading, keep answering
      }
      yield { value: request.value.toUpperCase() };
    }
    yield { value: "DONE" };
  },
};

// ---------------------------------------------------------------------------------------------

let server: grpc.Server;
let address: string;
let accounts: Client<typeof AccountService>;
let deliveries: Client<typeof DeliveryService>;
let streams: Client<typeof StreamService>;

beforeAll(async () => {
  server = new grpc.Server();
  addService(server, AccountService, accountImpl, { onError: (err) => reportedErrors.push(err) });
  addService(server, DeliveryService, deliveryImpl as unknown as ServiceImpl<typeof DeliveryService>);
  addService(server, StreamService, streamImpl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, boundPort) =>
      err === null ? resolve(boundPort) : reject(err),
    ),
  );
  address = `127.0.0.1:${port}`;
  // A default timeout turns any hang into DEADLINE_EXCEEDED instead of a stuck test.
  accounts = createClient(AccountService, { address, defaultTimeoutMs: 5_000 });
  deliveries = createClient(DeliveryService, { address, defaultTimeoutMs: 5_000 });
  streams = createClient(StreamService, { address, defaultTimeoutMs: 5_000 });
});

afterAll(() => {
  accounts?.close();
  deliveries?.close();
  streams?.close();
  server?.forceShutdown();
});


async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) {
    items.push(item);
  }
  return items;
}

describe("unary", () => {
  it("round-trips nested messages, enums and timestamps", async () => {
    const response = await accounts.getAccount(
      { accountId: "acc-1" },
      { metadata: { "x-request-id": "req-1" }, timeoutMs: 30_000 },
    );
    expect(response.$typeName).toBe("dronedelivery.account.v1.GetAccountResponse");
    expect(response.account).toEqual(account("acc-1"));
    expect(timestampDate(response.account!.createTime!).toISOString()).toBe("2024-05-01T10:00:00.123Z");

    const ctx = lastContext!;
    expect(ctx.path).toBe("/dronedelivery.account.v1.AccountService/GetAccount");
    expect(ctx.method.name).toBe("GetAccount");
    expect(ctx.service.typeName).toBe("dronedelivery.account.v1.AccountService");
    expect(ctx.metadata.get("x-request-id")).toEqual(["req-1"]);
    expect(ctx.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(ctx.deadline).toBeInstanceOf(Date);
    expect(ctx.deadline!.getTime() - Date.now()).toBeLessThanOrEqual(30_000);
    expect(ctx.signal.aborted).toBe(false);
  });

  it("round-trips a deeply nested message with lists, a oneof and enums", async () => {
    const { delivery } = await deliveries.getDelivery({ deliveryId: "d-1" });
    expect(delivery?.dropoff?.longitude).toBe(-122.2);
    expect(delivery?.pickup).toMatchObject({ latitude: 47.6062, longitude: -122.3321, altitude: 12.5 });
    expect(delivery?.confirmationRequired).toBe(ConfirmationType.SIGNATURE);
    expect(delivery?.packages.map((p) => [p.packageId, p.size, p.weightKg])).toEqual([
      ["p-1", PackageSize.SMALL, 1.25],
      ["p-2", PackageSize.LARGE, 9.5],
    ]);
    expect(delivery?.carrier).toMatchObject({ case: "thirdParty", value: { carrier: "ups", trackingId: "1Z999" } });
    expect(delivery?.history.map((h) => h.stage)).toEqual([DeliveryStage.CREATED, DeliveryStage.HEADED_TO_PICKUP]);
    expect(delivery?.history[1]?.changeTime).toEqual(created);
  });

  it("accepts a synchronous handler answering a plain init object", async () => {
    const response = await accounts.checkAccountStatus({ accountId: "acc-2" });
    expect(response).toMatchObject({ accountId: "acc-2", status: AccountStatus.SUSPENDED, canOrder: false, reason: "unpaid" });
  });

  it("sends the response headers a handler sets", async () => {
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    try {
      const headers = await new Promise<grpc.Metadata>((resolve, reject) => {
        const call = raw.makeUnaryRequest(
          "/dronedelivery.account.v1.AccountService/GetAccount",
          (bytes: Buffer) => bytes,
          (bytes: Buffer) => bytes,
          Buffer.from([0x0a, 0x01, 0x61]), // account_id: "a"
          (error) => (error === null ? undefined : reject(error)),
        );
        call.on("metadata", resolve);
      });
      expect(headers.get("x-served-by")).toEqual(["account-test"]);
    } finally {
      raw.close();
    }
  });

  it("waits for the channel to be ready", async () => {
    await accounts.waitForReady(Date.now() + 2_000);
    expect(accounts.grpcClient.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY);
  });

  it("has no deadline when the caller sets none", async () => {
    const noDefault = createClient(AccountService, { address });
    try {
      await noDefault.getAccount({ accountId: "acc-3" });
      expect(lastContext?.deadline).toBeUndefined();
      expect(lastContext?.timeRemainingMs()).toBeUndefined();
    } finally {
      noDefault.close();
    }
  });

  it("answers UNIMPLEMENTED for a method without a handler", async () => {
    const err = await rpcError(deliveries.cancelDelivery({ deliveryId: "d-1" }));
    expect(err.code).toBe(Code.Unimplemented);
  });
});

describe("server streaming", () => {
  it("round-trips several messages and ends", async () => {
    const responses: WatchDeliveryResponse[] = await collect(
      deliveries.watchDelivery({ deliveryId: "d-1", afterSequence: 10n }),
    );
    expect(responses.map((r) => r.sequence)).toEqual([1n, 2n, 3n, 14n]);
    expect(responses.map((r) => r.update.case)).toEqual(["statusEvent", "position", "statusEvent", "statusEvent"]);
    const first = responses[0]!.update;
    expect(first.case === "statusEvent" && first.value.deliveryId).toBe("d-1");
    expect(first.case === "statusEvent" && first.value.eventTime).toEqual(created);
    const second = responses[1]!.update;
    expect(second.case === "position" && second.value.location).toMatchObject({ latitude: 3, longitude: 4, altitude: 50 });
  });

  it("delivers a long stream to a slow consumer in order", async () => {
    let expected = 1n;
    // 3,000 items with pauses: a deadline far beyond the client's 5 s default, for a loaded machine.
    for await (const response of deliveries.watchDelivery({ deliveryId: "many" }, { timeoutMs: 60_000 })) {
      expect(response.sequence).toBe(expected);
      expected++;
      if (expected % 500n === 0n) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    expect(expected).toBe(3_001n);
  });

  it("cancels the call when the consumer stops reading, and the handler cleans up", async () => {
    streamCancelled = signalOf();
    streamFinally = signalOf();
    for await (const response of deliveries.watchDelivery({ deliveryId: "endless" })) {
      expect(response.sequence).toBe(1n);
      break;
    }
    const reason = await streamCancelled.promise;
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.Canceled);
    await streamFinally.promise;
  });

  it("propagates an AbortSignal to the handler", async () => {
    streamCancelled = signalOf();
    const controller = new AbortController();
    const received: bigint[] = [];
    const err = await rpcError(
      (async () => {
        for await (const response of deliveries.watchDelivery({ deliveryId: "endless" }, { signal: controller.signal })) {
          received.push(response.sequence);
          controller.abort(new Error("user left the page"));
        }
      })(),
    );
    expect(received).toEqual([1n]);
    expect(err.code).toBe(Code.Canceled);
    expect((err.cause as Error).message).toBe("user left the page");
    expect(((await streamCancelled.promise) as ConnectError).code).toBe(Code.Canceled);
  });

  it("ends the stream with the ConnectError a handler throws after some items", async () => {
    const received: bigint[] = [];
    const err = await rpcError(
      (async () => {
        for await (const response of deliveries.watchDelivery({ deliveryId: "throws" })) {
          received.push(response.sequence);
        }
      })(),
    );
    expect(received).toEqual([1n]);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(err)).toEqual([{ field: "after_sequence", description: "too far ahead" }]);
  });

  it("ends the stream with INTERNAL when the handler yields an invalid item", async () => {
    const received: bigint[] = [];
    const err = await rpcError(
      (async () => {
        for await (const response of deliveries.watchDelivery({ deliveryId: "bad-item" })) {
          received.push(response.sequence);
        }
      })(),
    );
    // INTERNAL, not the client's 5 s DEADLINE_EXCEEDED: the stream ended at the invalid item.
    expect(received).toEqual([1n]);
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toContain(
      "/dronedelivery.delivery.v1.DeliveryService/WatchDelivery: handler yielded an invalid dronedelivery.delivery.v1.WatchDeliveryResponse (response #2)",
    );
    expect(err.rawMessage).toContain("field update.statusEvent");
  });

  it("rejects an unknown oneof case", async () => {
    const err = await rpcError(collect(deliveries.watchDelivery({ deliveryId: "bad-oneof" })));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toContain('field update: unknown case string "teleport"');
  });
});

describe("cancellation and deadlines", () => {
  it("propagates a client abort to the handler's signal", async () => {
    abortedHandler = signalOf();
    const controller = new AbortController();
    const call = accounts.getAccount({ accountId: "wait-for-abort" }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const err = await rpcError(call);
    expect(err.code).toBe(Code.Canceled);
    const reason = await abortedHandler.promise;
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.Canceled);
  });

  it("fails at once when the signal is already aborted", async () => {
    const err = await rpcError(accounts.getAccount({ accountId: "acc-1" }, { signal: AbortSignal.abort() }));
    expect(err.code).toBe(Code.Canceled);
  });

  it("answers DEADLINE_EXCEEDED when the deadline passes, and aborts the handler", async () => {
    abortedHandler = signalOf();
    const err = await rpcError(accounts.getAccount({ accountId: "wait-for-abort" }, { timeoutMs: 150 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    // The client cancels at its deadline, and the server's copy of the deadline (the remaining
    // time, counted from when the request was read) is later by the time the request took to be
    // read: which of the two the server sees first depends on the machine's load.
    const reason = await abortedHandler.promise;
    expect(reason).toBeInstanceOf(ConnectError);
    expect([Code.DeadlineExceeded, Code.Canceled]).toContain((reason as ConnectError).code);
  });

  it("aborts the handler with DEADLINE_EXCEEDED when the server's deadline passes first", async () => {
    // A client that sends a 150 ms timeout and never cancels: only the server's deadline can end the call.
    abortedHandler = signalOf();
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("grpc-timeout", "150m");
    const status = await new Promise<grpc.ServiceError>((resolve) => {
      raw.makeUnaryRequest(
        methodPath(AccountService.method.getAccount),
        (request: Uint8Array) => Buffer.from(request),
        (bytes: Buffer) => bytes,
        toBinary(GetAccountRequestSchema, create(GetAccountRequestSchema, { accountId: "wait-for-abort" })),
        metadata,
        (err) => resolve(err as grpc.ServiceError),
      );
    });
    raw.close();
    expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const reason = await abortedHandler.promise;
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.DeadlineExceeded);
  });

  it("applies the earlier of deadline and timeoutMs", async () => {
    const err = await rpcError(
      accounts.getAccount({ accountId: "wait-for-abort" }, { deadline: new Date(Date.now() + 100), timeoutMs: 60_000 }),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
  });
});

describe("errors", () => {
  it("delivers a ConnectError's code and BadRequest field violations", async () => {
    const err = await rpcError(
      accounts.createAccount({ account: { accountId: "acc-9", userId: "nobody", status: AccountStatus.SUSPENDED } }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("invalid request: account.user_id: names no user; account.status: cannot be suspended at creation");
    expect(fieldViolations(err)).toEqual([
      { field: "account.user_id", description: "names no user" },
      { field: "account.status", description: "cannot be suspended at creation" },
    ]);
  });

  it("delivers other details and the handler's trailers", async () => {
    const err = await rpcError(accounts.getAccount({ accountId: "missing" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("account missing not found");
    expect(err.findDetails(ErrorInfoSchema)).toMatchObject([{ reason: "ACCOUNT_NOT_FOUND", domain: "account" }]);
    expect(err.metadata.get("x-trace-id")).toBe("trace-42");
    expect(fieldViolations(err)).toEqual([]);
  });

  it("sends a thrown ConnectError's metadata as trailers, binary values included", async () => {
    const err = await rpcError(accounts.getAccount({ accountId: "thrown-metadata" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe("account thrown-metadata is archived");
    expect(err.metadata.get("x-archived-by")).toBe("ops");
    expect([...decodeBinaryHeader(err.metadata.get("x-marker-bin") ?? "")]).toEqual([1, 2, 3]);
  });

  it("relays a failure received from another call with its code, message, details and trailers", async () => {
    reportedErrors.length = 0;
    const err = await rpcError(accounts.getAccount({ accountId: "relayed" }));
    expect(reportedErrors).toEqual([]);
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("account missing not found");
    expect(err.findDetails(ErrorInfoSchema)).toMatchObject([{ reason: "ACCOUNT_NOT_FOUND", domain: "account" }]);
    expect(err.metadata.get("x-trace-id")).toBe("trace-42");
  });

  it("delivers a retry delay, and does not report a ConnectError as a fault", async () => {
    reportedErrors.length = 0;
    const err = await rpcError(accounts.getAccount({ accountId: "busy" }));
    expect(reportedErrors).toEqual([]);
    expect(err.code).toBe(Code.Unavailable);
    expect(retryDelayMs(err)).toBe(1500);
  });

  it("turns a thrown plain Error into INTERNAL naming the method, without the stack", async () => {
    reportedErrors.length = 0;
    const err = await rpcError(accounts.getAccount({ accountId: "boom" }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe("/dronedelivery.account.v1.AccountService/GetAccount: handler failed: database exploded");
    expect(err.rawMessage).not.toMatch(/\bat\s/);
    expect(err.details).toEqual([]);
    expect(reportedErrors).toHaveLength(1);
    expect((reportedErrors[0] as Error).message).toBe("database exploded");
  });

  it("turns a thrown non-error value into INTERNAL", async () => {
    const err = await rpcError(accounts.getAccount({ accountId: "boom-sync-string" }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toContain("/dronedelivery.account.v1.AccountService/GetAccount: handler failed");
  });

  const invalidResponses: [string, string][] = [
    ["wrong-message", "got a dronedelivery.account.v1.GetAccountRequest message"],
    ["undefined", "got undefined"],
    ["null", "got null"],
    ["string-for-message", 'field account: expected a dronedelivery.account.v1.Account message, got string "a-1"'],
    ["date-for-timestamp", "field account.createTime: expected a google.protobuf.Timestamp message, got a Date"],
    ["nested-wrong-message", "field account: expected a dronedelivery.account.v1.Account message, got a dronedelivery.account.v1.GetAccountRequest message"],
  ];
  it.each(invalidResponses)("answers INTERNAL at once when a handler returns an invalid response (%s)", async (id, reason) => {
    const err = await rpcError(accounts.getAccount({ accountId: id }));
    // INTERNAL, not the client's 5 s DEADLINE_EXCEEDED: the call did not wait for a valid answer.
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe(
      `/dronedelivery.account.v1.AccountService/GetAccount: handler returned an invalid dronedelivery.account.v1.GetAccountResponse: ${reason}`,
    );
  });

  it("rejects a string where an enum is expected, and a string where a bool is expected", async () => {
    const enumErr = await rpcError(accounts.checkAccountStatus({ accountId: "string-for-enum" }));
    expect(enumErr.code).toBe(Code.Internal);
    expect(enumErr.rawMessage).toBe(
      "/dronedelivery.account.v1.AccountService/CheckAccountStatus: handler returned an invalid dronedelivery.account.v1.CheckAccountStatusResponse: " +
        'field status: expected a dronedelivery.account.v1.AccountStatus value (an integer), got string "ACTIVE"',
    );
    const boolErr = await rpcError(accounts.checkAccountStatus({ accountId: "string-for-bool" }));
    expect(boolErr.rawMessage).toContain('field canOrder: expected a boolean, got string "yes"');
  });

  it("answers INVALID_ARGUMENT to a request that does not decode", async () => {
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
        raw.makeUnaryRequest(
          "/dronedelivery.account.v1.AccountService/GetAccount",
          (bytes: Buffer) => bytes,
          (bytes: Buffer) => bytes,
          Buffer.from([0x0a, 0x10, 0x41]), // field 1 claims 16 bytes, only 1 follows
          (error) => (error === null ? reject(new Error("expected a failure")) : resolve(error)),
        );
      });
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.details).toContain("/dronedelivery.account.v1.AccountService/GetAccount: request is not a valid dronedelivery.account.v1.GetAccountRequest");
    } finally {
      raw.close();
    }
  });

  it("refuses an invalid request on the client without calling the server", async () => {
    const err = await rpcError(accounts.getAccount({ accountId: 42 } as never));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe(
      "/dronedelivery.account.v1.AccountService/GetAccount: invalid request dronedelivery.account.v1.GetAccountRequest: field accountId: expected a string, got number 42",
    );
  });
});

describe("client streaming and bidi", () => {
  it("round-trips a client stream from an async generator and from an array", async () => {
    async function* numbers() {
      for (let i = 1; i <= 5; i++) {
        yield { value: i };
      }
    }
    expect((await streams.sum(numbers())).value).toBe(15);
    expect((await streams.sum([create(Int32ValueSchema, { value: 40 }), { value: 2 }])).value).toBe(42);
    expect((await streams.sum([])).value).toBe(0);
  });

  it("delivers a ConnectError thrown while reading the client stream", async () => {
    const err = await rpcError(streams.sum([{ value: 1 }, { value: -1 }, { value: 2 }]));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(fieldViolations(err)).toEqual([{ field: "value", description: "must not be negative" }]);
  });

  it("writes a long client stream with flow control", async () => {
    function* ones() {
      for (let i = 0; i < 20_000; i++) {
        yield { value: 1 };
      }
    }
    // 20,000 messages: a deadline far beyond the client's 5 s default, for a loaded machine.
    expect((await streams.sum(ones(), { timeoutMs: 60_000 })).value).toBe(20_000);
  });

  it("propagates a client abort to a client-streaming handler's signal", async () => {
    sumCancelled = signalOf();
    const controller = new AbortController();
    async function* oneThenWait() {
      yield { value: SLOW_COMMIT };
      setTimeout(() => controller.abort(), 20);
      await new Promise((resolve) => setTimeout(resolve, 10_000));
    }
    const err = await rpcError(streams.sum(oneThenWait(), { signal: controller.signal }));
    expect(err.code).toBe(Code.Canceled);
    const reason = await sumCancelled.promise;
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.Canceled);
  });

  it("answers INVALID_ARGUMENT to a streamed request that does not decode", async () => {
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
        const call = raw.makeClientStreamRequest(
          "/test.stream.v1.StreamService/Sum",
          (bytes: Buffer) => bytes,
          (bytes: Buffer) => bytes,
          (error) => (error === null ? reject(new Error("expected a failure")) : resolve(error)),
        );
        call.write(Buffer.from([0x08, 0x01])); // value: 1
        call.write(Buffer.from([0xff, 0xff, 0xff])); // not a message
        call.end();
      });
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.details).toContain("/test.stream.v1.StreamService/Sum: request is not a valid google.protobuf.Int32Value");
    } finally {
      raw.close();
    }
  });

  it("rejects an invalid streamed request on the client", async () => {
    const err = await rpcError(streams.sum([{ value: 1 }, { value: 1.5 }]));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe(
      "/test.stream.v1.StreamService/Sum: invalid request google.protobuf.Int32Value (request #2): field value: expected a 32-bit integer, got number 1.5",
    );
  });

  it("passes an error of the caller's request iterable through", async () => {
    async function* failing() {
      yield { value: 1 };
      throw new Error("sensor feed lost");
    }
    await expect(streams.sum(failing())).rejects.toThrow("sensor feed lost");
  });

  it("keeps answering a bidi stream after the handler stops reading", async () => {
    const replies = await collect(streams.shout([{ value: "a" }, { value: "stop" }, { value: "ignored" }]));
    expect(replies.map((r) => r.value)).toEqual(["A", "DONE"]);
  });

  it("round-trips a bidi stream", async () => {
    async function* words() {
      yield { value: "take" };
      yield { value: "off" };
    }
    const replies = await collect(streams.shout(words()));
    expect(replies.map((r) => r.value)).toEqual(["TAKE", "OFF", "DONE"]);
  });

  it("ends a bidi stream with INTERNAL when the handler yields an invalid item", async () => {
    const received: string[] = [];
    const err = await rpcError(
      (async () => {
        for await (const reply of streams.shout([{ value: "ok" }, { value: "bad" }])) {
          received.push(reply.value);
        }
      })(),
    );
    expect(received).toEqual(["OK"]);
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe(
      "/test.stream.v1.StreamService/Shout: handler yielded an invalid google.protobuf.StringValue (response #2): field value: expected a string, got number 42",
    );
  });
});

// Compile-time checks (never run): each line marked @ts-expect-error must stay a type error.
function typeChecks(client: Client<typeof AccountService>): void {
  void client.getAccount({ accountId: "a" });
  // @ts-expect-error unknown request field
  void client.getAccount({ acountId: "a" });
  // @ts-expect-error wrong request field type
  void client.getAccount({ accountId: 1 });
  // @ts-expect-error unary methods do not stream
  void client.getAccount([{ accountId: "a" }]);
  void client.close();

  const impl: ServiceImpl<typeof AccountService> = {
    getAccount: (request) => ({ account: { accountId: request.accountId, status: AccountStatus.ACTIVE } }),
    // @ts-expect-error a string is not an AccountStatus
    checkAccountStatus: () => ({ status: "ACTIVE" }),
    createAccount: async (request) => ({ account: request.account }),
  };
  void impl;

  // @ts-expect-error a handler is missing
  const incomplete: ServiceImpl<typeof AccountService> = { getAccount: () => ({}), checkAccountStatus: () => ({}) };
  void incomplete;

  const streaming: ServiceImpl<typeof StreamService> = {
    sum: async () => ({ value: 1 }),
    // @ts-expect-error a bidi handler must return an async iterable
    shout: async () => ({ value: "x" }),
  };
  void streaming;

  const streamClient = {} as Client<typeof StreamService>;
  void streamClient.sum([{ value: 1 }]);
  // @ts-expect-error the requests of a client stream are Int32Value
  void streamClient.sum([{ value: "1" }]);
}
void typeChecks;
