/**
 * Shared NATS JetStream runtime for the services: connections, the platform's streams and
 * subjects, key-value buckets, and protobuf messages with typed headers.
 */
export { connectNats, drainQuietly, DEFAULT_NATS_URL, type ConnectNatsOptions } from "./connection.js";
export {
  assertSubjectToken,
  ensureStreams,
  STREAM_DEFINITIONS,
  STREAMS,
  subjects,
  toStreamConfig,
  type EnsureStreamResult,
  type EnsureStreamsOptions,
  type SettingDifference,
  type StreamDefinition,
  type StreamName,
} from "./streams.js";
export { openBucket, type OpenBucketOptions } from "./kv.js";
export { natsReplicasFromEnv, MAX_REPLICAS } from "./replicas.js";
export {
  decodeMessage,
  MESSAGE_ID_HEADER,
  MESSAGE_TYPE_HEADER,
  MessageDecodeError,
  messageTypeOf,
  publishMessage,
  type PublishMessageOptions,
  type ReceivedMessage,
} from "./messages.js";
