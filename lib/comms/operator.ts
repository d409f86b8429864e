/**
 * Credentials of the `operator` identity, for tools that talk to services without being one:
 * health probes of `make run` and the tests, reflection, grpcurl by hand. The authorization table
 * lets the operator call health and reflection only.
 */
import { credentials, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { channelCredentials, DEV_TLS_CHANNEL_OPTIONS, ensureDevPki, OPERATOR_IDENTITY, pkiDir, tlsEnabled } from "../security/index.js";
import type { Env } from "../service/config.js";

export interface OperatorChannel {
  readonly credentials: ChannelCredentials;
  readonly channelOptions: ChannelOptions;
}

/** The operator's channel settings: mutual TLS unless INTERNAL_TLS=off. */
export async function operatorChannel(env: Env = process.env): Promise<OperatorChannel> {
  if (!tlsEnabled(env)) return { credentials: credentials.createInsecure(), channelOptions: {} };
  const material = (await ensureDevPki(pkiDir(env), [OPERATOR_IDENTITY])).material(OPERATOR_IDENTITY);
  return { credentials: channelCredentials(material), channelOptions: DEV_TLS_CHANNEL_OPTIONS };
}
