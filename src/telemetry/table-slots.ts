// The slots the table reader fills and the conntrack worker parses, in
// memory both threads share: a ring of SLOTS buffers and, beside it, how many
// slots were filled and parsed so far and each slot's length. The reader
// waits (Atomics.wait) only when every slot is full; the parser waits
// (Atomics.waitAsync) only when it has caught up.

export const SLOTS = 4;
/** 256 KiB: /proc hands out at most a page per read(2), so a slot takes ~64 reads. */
export const SLOT_BYTES = 256 * 1024;
/** A slot is handed over once less than this is left in it. */
export const MIN_READ_BYTES = 8 * 1024;

/** Indexes in the control array. */
export const FILLED = 0;
export const PARSED = 1;
export const LENGTHS = 2;

export interface SharedSlots {
  readonly data: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
}

export const sharedSlots = (): SharedSlots => ({
  data: new SharedArrayBuffer(SLOTS * SLOT_BYTES),
  control: new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * (LENGTHS + SLOTS)),
});

export interface ReadRequest {
  readonly id: number;
  readonly path: string;
}

export type ReadOutcome =
  | { readonly id: number; readonly ok: true }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code: string | undefined };
