// Flow logs from the pod's conntrack events.
export { FlowLog, type FlowLogCounters, type FlowLogOptions, type DropReason } from "./flow-log.js";
export type { FlowRecord } from "./record.js";
export type { EventStreamLog as FlowsLog } from "./event-stream.js";
export { parseConntrackLine, type ConntrackEvent } from "./conntrack-event.js";
