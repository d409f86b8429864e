/**
 * Enforcing the authorization table on a grpc-js server, in one place for every service it
 * serves: a server interceptor that looks up the verified caller identity and the called method
 * and ends a refused call before its handler runs, with UNAUTHENTICATED (no identity) or
 * PERMISSION_DENIED (an identity the table does not allow).
 */
import { Code } from "@connectrpc/connect";
import {
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerListener,
} from "@grpc/grpc-js";
import { authorize, type AuthorizationDecision } from "./authorization.js";
import { callerIdentity } from "./peer-identity.js";

/** A refused call, for logs and metrics. */
export interface Denial {
  /** `/package.Service/Method` */
  readonly path: string;
  readonly caller: string | undefined;
  readonly code: Code.Unauthenticated | Code.PermissionDenied;
  readonly reason: string;
}

export interface AuthorizationInterceptorOptions {
  /**
   * Whether to enforce the table: `tlsEnabled(env)`. With TLS off no call carries a caller
   * identity, so nothing is checked and every call goes through.
   */
  readonly enforce: boolean;
  /** Called for every refused call. */
  readonly onDenied?: (denial: Denial) => void;
  /** The decision; default `authorize` (the platform's table). */
  readonly decide?: (serviceTypeName: string, methodName: string, caller: string | undefined) => AuthorizationDecision;
}

/**
 * A server interceptor enforcing the authorization table, for `new grpc.Server({ interceptors })`.
 */
export function authorizationInterceptor(options: AuthorizationInterceptorOptions): ServerInterceptor {
  const decide = options.decide ?? authorize;
  // An allowed call goes on as grpc-js made it: a wrapping layer per call would only forward
  // every event and message (each layer of grpc-js's server interceptor chain costs per call).
  // (grpc-js's type asks for its ServerInterceptingCall class; it only uses the call's interface.)
  if (!options.enforce) return (_methodDescriptor, call) => call as ServerInterceptingCall;
  /** Service and method of each path, split once. */
  const names = new Map<string, { service: string; method: string }>();
  return (methodDescriptor, call) => {
    const path = methodDescriptor.path;
    let split = names.get(path);
    if (split === undefined) {
      split = splitPath(path);
      names.set(path, split);
    }
    const caller = callerIdentity(call);
    const decision = decide(split.service, split.method, caller);
    if (decision.allowed) return call as ServerInterceptingCall;
    const denial: Denial = {
      path,
      caller,
      code: caller === undefined ? Code.Unauthenticated : Code.PermissionDenied,
      reason: decision.reason,
    };
    options.onDenied?.(denial);
    return refusedCall(call, denial);
  };
}

/** A call that answers `denial` as soon as its headers arrive and never reaches its handler. */
function refusedCall(call: ServerInterceptingCallInterface, denial: Denial): ServerInterceptingCall {
  const listener: ServerListener = {
    onReceiveMetadata: () => call.sendStatus({ code: denial.code as number, details: denial.reason }),
    onReceiveMessage: () => {},
    onReceiveHalfClose: () => {},
  };
  return new ServerInterceptingCall(call, { start: (next) => next(listener) });
}

/** "/pkg.Service/Method" → { service: "pkg.Service", method: "Method" } */
function splitPath(path: string): { service: string; method: string } {
  const slash = path.lastIndexOf("/");
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}
