// Reading identities out of certificates and SPIFFE IDs, and the INTERNAL_TLS switch.

import { describe, expect, it } from "vitest";
import { ConfigError } from "../service/config.js";
import { pkiDir, tlsEnabled } from "./credentials.js";
import { DEFAULT_PKI_DIR } from "./dev-pki.js";
import { identityFromSpiffeId, isIdentityName, spiffeId } from "./identities.js";
import { callerIdentity, identityFromCertificate } from "./peer-identity.js";
import { parseSubjectAltNames } from "./subject-alt-names.js";

type CertLike = Parameters<typeof identityFromCertificate>[0];
const cert = (cn: string | string[] | undefined, subjectaltname: string | undefined): CertLike =>
  ({ subject: cn === undefined ? {} : { CN: cn }, subjectaltname }) as unknown as CertLike;

describe("identities", () => {
  it("writes and reads SPIFFE IDs of the trust domain", () => {
    expect(spiffeId("drone")).toBe("spiffe://dronedelivery.local/drone");
    expect(identityFromSpiffeId("spiffe://dronedelivery.local/drone")).toBe("drone");
    expect(identityFromSpiffeId("spiffe://elsewhere.example/drone")).toBeUndefined();
    expect(identityFromSpiffeId("spiffe://dronedelivery.local/ns/drone")).toBeUndefined();
    expect(identityFromSpiffeId("spiffe://dronedelivery.local/")).toBeUndefined();
  });

  it("accepts only names that are safe as file names", () => {
    expect(["drone", "third-party", "a1"].every(isIdentityName)).toBe(true);
    expect(["", "ca", "Drone", "../x", "a/b", "-x", "x.crt"].some(isIdentityName)).toBe(false);
  });
});

describe("identityFromCertificate", () => {
  it("prefers the SPIFFE ID, falling back to the common name only without one", () => {
    expect(identityFromCertificate(cert("gateway", "URI:spiffe://dronedelivery.local/drone, DNS:localhost"))).toBe("drone");
    expect(identityFromCertificate(cert("gateway", "DNS:localhost, IP Address:127.0.0.1"))).toBe("gateway");
    expect(identityFromCertificate(cert("gateway", undefined))).toBe("gateway");
  });

  it("names no identity for a foreign trust domain, several identities, or an odd common name", () => {
    expect(identityFromCertificate(cert("drone", "URI:spiffe://elsewhere.example/drone"))).toBeUndefined();
    expect(
      identityFromCertificate(cert(undefined, "URI:spiffe://dronedelivery.local/drone, URI:spiffe://dronedelivery.local/scheduler")),
    ).toBeUndefined();
    expect(identityFromCertificate(cert("Drone Service", undefined))).toBeUndefined();
    expect(identityFromCertificate(cert(["drone", "scheduler"], undefined))).toBeUndefined();
  });

  it("reads quoted entries the way Node prints them", () => {
    expect(parseSubjectAltNames('DNS:a.example, URI:"spiffe://dronedelivery.local/x,y", IP Address:::1')).toEqual([
      { type: "DNS", value: "a.example" },
      { type: "URI", value: "spiffe://dronedelivery.local/x,y" },
      { type: "IP Address", value: "::1" },
    ]);
    expect(identityFromCertificate(cert(undefined, 'URI:"spiffe://dronedelivery.local/x,y"'))).toBeUndefined();
  });

  it("gives no caller for a plaintext call", () => {
    expect(callerIdentity({ getAuthContext: () => ({}) })).toBeUndefined();
    expect(callerIdentity({ getAuthContext: () => null })).toBeUndefined();
  });
});

describe("the INTERNAL_TLS switch", () => {
  it("is on unless turned off", () => {
    expect(tlsEnabled({})).toBe(true);
    for (const on of ["on", "ON", "true", "1", " "]) expect(tlsEnabled({ INTERNAL_TLS: on }), on).toBe(true);
    for (const off of ["off", "Off", "false", "0"]) expect(tlsEnabled({ INTERNAL_TLS: off }), off).toBe(false);
    expect(() => tlsEnabled({ INTERNAL_TLS: "maybe" })).toThrow(ConfigError);
  });

  it("keeps the PKI under .run/pki unless INTERNAL_PKI_DIR says otherwise", () => {
    expect(DEFAULT_PKI_DIR).toMatch(/[/\\]\.run[/\\]pki$/);
    expect(pkiDir({})).toBe(DEFAULT_PKI_DIR);
    expect(pkiDir({ INTERNAL_PKI_DIR: "/tmp/elsewhere" })).toBe("/tmp/elsewhere");
  });
});
