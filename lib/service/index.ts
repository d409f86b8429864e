// The service kit: what every gRPC service of the platform is built from.
export * from "./config.js";
export * from "./grpc-server.js";
export * from "./reflection.js";
export * from "./service-host.js";
export * from "./process-main.js";
export * from "./registry.js";
