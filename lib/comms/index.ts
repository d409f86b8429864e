// The communication layer: clients and servers of interservice calls with every concern applied.
export { createCommsLayer, type ClientSettings, type CommsLayer, type CommsLayerOptions, type ServerSecurity } from "./layer.js";
export { operatorChannel, type OperatorChannel } from "./operator.js";
