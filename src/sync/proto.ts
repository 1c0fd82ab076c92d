// The policy-sync wire format (SPEC §5): only the messages and field numbers
// the gateway reads, as a protobufjs JSON descriptor loaded with proto-loader's
// fromJSON.
//
// Why embedded JSON and not a .proto file or generated code: the descriptor
// lives in the compiled module, so dist/ alone works inside the image (no file
// to copy, no path to resolve at run time); there is no code generator to run
// or generated code to keep in step; and proto-loader gives the serialize and
// deserialize functions that grpc-js takes directly, for the client and for
// the fake agent alike. Fields not listed here are skipped by the decoder,
// which is how unknown ToDataplane payloads are ignored.
import { fromJSON, type MessageTypeDefinition, type ServiceDefinition } from "@grpc/proto-loader";

const bool = (id: number) => ({ type: "bool", id });
const string = (id: number) => ({ type: "string", id });

const descriptor: Parameters<typeof fromJSON>[0] = {
  nested: {
    felix: {
      nested: {
        PolicySync: {
          methods: {
            Sync: {
              requestType: "SyncRequest",
              responseType: "ToDataplane",
              responseStream: true,
              comment: "the agent's current view, then InSync, then every change",
            },
          },
        },
        SyncRequest: {
          fields: { subscriptionType: string(3), supportsIPv6RouteUpdates: bool(100) },
        },
        ToDataplane: {
          oneofs: { payload: { oneof: ["inSync", "routeUpdate", "routeRemove"] } },
          fields: {
            sequenceNumber: { type: "uint64", id: 15 },
            inSync: { type: "InSync", id: 1 },
            routeUpdate: { type: "RouteUpdate", id: 23 },
            routeRemove: { type: "RouteRemove", id: 24 },
          },
        },
        InSync: { fields: {} },
        RouteType: {
          values: {
            CIDR_INFO: 0,
            REMOTE_WORKLOAD: 1,
            REMOTE_HOST: 2,
            LOCAL_WORKLOAD: 3,
            LOCAL_HOST: 4,
            REMOTE_TUNNEL: 5,
            LOCAL_TUNNEL: 6,
          },
        },
        IPPoolType: { values: { NONE: 0, NO_ENCAP: 1, VXLAN: 2, IPIP: 3 } },
        TunnelType: { fields: { ipip: bool(1), vxlan: bool(2), wireguard: bool(3) } },
        RouteUpdate: {
          fields: {
            type: { type: "RouteType", id: 1 },
            types: { type: "int32", id: 12 },
            ipPoolType: { type: "IPPoolType", id: 2 },
            dst: string(3),
            dstNodeName: string(4),
            dstNodeIp: string(5),
            sameSubnet: bool(7),
            natOutgoing: bool(8),
            localWorkload: bool(9),
            tunnelType: { type: "TunnelType", id: 10 },
            borrowed: bool(11),
          },
        },
        RouteRemove: { fields: { dst: string(2) } },
      },
    },
  },
};

/** SyncRequest as sent. */
export interface SyncRequestMessage {
  subscriptionType?: string;
  supportsIPv6RouteUpdates?: boolean;
}

/** Enum fields arrive as numbers; plain objects in tests and fixtures may use the names. */
export type WireEnum = number | string;

export interface TunnelTypeMessage {
  ipip?: boolean | null;
  vxlan?: boolean | null;
  wireguard?: boolean | null;
}

export interface RouteUpdateMessage {
  type?: WireEnum | null;
  types?: number | null;
  ipPoolType?: WireEnum | null;
  dst?: string | null;
  dstNodeName?: string | null;
  dstNodeIp?: string | null;
  sameSubnet?: boolean | null;
  natOutgoing?: boolean | null;
  localWorkload?: boolean | null;
  tunnelType?: TunnelTypeMessage | null;
  borrowed?: boolean | null;
}

export interface RouteRemoveMessage {
  dst?: string | null;
}

/** ToDataplane as deserialized (absent fields are absent; uint64 as a decimal string). */
export interface ToDataplaneMessage {
  sequenceNumber?: string | number | bigint | null;
  inSync?: object | null;
  routeUpdate?: RouteUpdateMessage | null;
  routeRemove?: RouteRemoveMessage | null;
}

const packageDefinition = fromJSON(descriptor, {
  // uint64 as a decimal string: exact, and converted to bigint by the codec.
  longs: String,
  // Absent fields stay absent, so an absent tunnel_type is told from an empty one.
  defaults: false,
});

export const policySyncService = packageDefinition["felix.PolicySync"] as ServiceDefinition;
export const syncRequestType = packageDefinition["felix.SyncRequest"] as MessageTypeDefinition<
  SyncRequestMessage,
  SyncRequestMessage
>;
export const toDataplaneType = packageDefinition["felix.ToDataplane"] as MessageTypeDefinition<
  ToDataplaneMessage,
  ToDataplaneMessage
>;

/** The gRPC method path of PolicySync.Sync. */
export const SYNC_METHOD = "/felix.PolicySync/Sync";
