/**
 * Credentials of the `operator` identity, for tools that talk to services without being one:
 * health probes of `make run` and the tests, reflection, grpcurl by hand. The authorization table
 * lets the operator call health and reflection only.
 */
import { credentials, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { channelCredentials, DEV_TLS_CHANNEL_OPTIONS, loadInternalTls, OPERATOR_IDENTITY, readInternalTlsSettings } from "../security/index.js";
import type { Env } from "../service/config.js";

export interface OperatorChannel {
  readonly credentials: ChannelCredentials;
  readonly channelOptions: ChannelOptions;
}

/** Made once per PKI folder: probes poll, and the certificate files need not be read each time. */
const channels = new Map<string, Promise<OperatorChannel>>();

/**
 * The operator's channel settings: mutual TLS unless INTERNAL_TLS=off, with the operator's
 * certificate from the external CA's files when they are set, else from the development PKI.
 */
export function operatorChannel(env: Env = process.env): Promise<OperatorChannel> {
  const settings = readInternalTlsSettings(env);
  if (!settings.enabled) return Promise.resolve({ credentials: credentials.createInsecure(), channelOptions: {} });
  const dir = settings.source === "files" ? `${settings.files.caFile}|${settings.files.certFile}|${settings.files.keyFile}` : settings.dir;
  let channel = channels.get(dir);
  if (channel === undefined) {
    channel = loadInternalTls(env, OPERATOR_IDENTITY).then((tls) => {
      if (tls === undefined) throw new Error("internal TLS was turned off meanwhile");
      return {
        credentials: channelCredentials(tls.material),
        // The probes dial loopback addresses: the development certificates name localhost.
        channelOptions: tls.source === "dev-pki" ? DEV_TLS_CHANNEL_OPTIONS : {},
      };
    });
    // A failure (an unreadable folder) is not kept: the next probe tries again.
    channel.catch(() => channels.delete(dir));
    channels.set(dir, channel);
  }
  return channel;
}
