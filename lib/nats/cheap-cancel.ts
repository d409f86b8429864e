/**
 * nats.js settles every request (a JetStream publish with ack, a KV read or write) by calling its
 * `cancel()`, which makes a "cancelled" NatsError to reject a promise that the reply has already
 * resolved: the error is thrown away unseen, but making it captures a stack trace, 4-6 % of the
 * CPU of a service whose work is mostly NATS requests. Here that one error, "cancelled" without a
 * chained cause, is made without a stack trace. It is still a NatsError with its code and message;
 * no other error of the client changes. Installed once, by importing this module.
 */
import { ErrorCode, NatsError } from "nats";

type ErrorFactory = (code: string, chainedError?: Error) => NatsError;

const INSTALLED = Symbol.for("dronedelivery.nats.cheap-cancel");
const holder = NatsError as unknown as { errorForCode: ErrorFactory; [INSTALLED]?: true };

if (!holder[INSTALLED]) {
  const errorForCode = holder.errorForCode.bind(NatsError);
  holder.errorForCode = (code, chainedError) => {
    if (code !== ErrorCode.Cancelled || chainedError !== undefined) return errorForCode(code, chainedError);
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return errorForCode(code);
    } finally {
      Error.stackTraceLimit = limit;
    }
  };
  holder[INSTALLED] = true;
}
