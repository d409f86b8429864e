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

/** Made once per PKI folder: probes poll, and the certificate files need not be read each time. */
const channels = new Map<string, Promise<OperatorChannel>>();

/** The operator's channel settings: mutual TLS unless INTERNAL_TLS=off. */
export function operatorChannel(env: Env = process.env): Promise<OperatorChannel> {
  if (!tlsEnabled(env)) return Promise.resolve({ credentials: credentials.createInsecure(), channelOptions: {} });
  const dir = pkiDir(env);
  let channel = channels.get(dir);
  if (channel === undefined) {
    channel = ensureDevPki(dir, [OPERATOR_IDENTITY]).then((pki) => ({
      credentials: channelCredentials(pki.material(OPERATOR_IDENTITY)),
      channelOptions: DEV_TLS_CHANNEL_OPTIONS,
    }));
    // A failure (an unreadable folder) is not kept: the next probe tries again.
    channel.catch(() => channels.delete(dir));
    channels.set(dir, channel);
  }
  return channel;
}
